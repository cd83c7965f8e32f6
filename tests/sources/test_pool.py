"""The process's connections to a live gateway, through `emit`: shared by threads and calls, a child's own after
`os.fork()`, and the secret read again when the gateway refuses it after a rotation."""

from __future__ import annotations

import os
import threading
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import flowhook
from flowhook.gateway.schemes import generate_secret
from flowhook.gateway.secrets import secret_store
from flowhook.settings import Settings
from flowhook.sources.emit import emit_many, item
from flowhook.sources.pool import close_connections
from flowhook.sources.webhook import SignatureConfig, SourceConfig
from tests.factories import spooled_events
from tests.servers import counting_proxy, serve

REQUEST = {"user_id": "u1", "action": "search"}


def spooled(settings: Settings) -> Counter[str]:
    return Counter(event.id for event in spooled_events(settings.spool_dir))


def in_child(send: Callable[[], str]) -> str:
    """What `send()` returns in a child made by `os.fork()` (which must exit 0)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            os.write(write, send().encode())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed: its traceback is above"
    return answer


def test_threads_emitting_at_once_each_get_their_ids_and_each_event_is_spooled_once(settings: Settings) -> None:
    sent: list[list[str]] = [[] for _ in range(8)]

    def send(n: int) -> None:
        for k in range(25):
            sent[n].append(flowhook.emit("user_request", REQUEST, id=f"t{n}-{k}", settings=settings))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [event_id for mine in sent for event_id in mine]
    assert len(set(ids)) == len(ids) == 200
    assert spooled(settings) == Counter(ids)


def test_calls_share_one_connection_whichever_settings_object_names_the_gateway(settings: Settings) -> None:
    with counting_proxy(settings.gateway_port) as (port, accepted):
        proxied = settings.model_copy(update={"gateway_port": port})
        ids = [flowhook.emit("user_request", REQUEST, settings=proxied) for _ in range(10)]
        ids += emit_many([item("user_request", REQUEST)] * 3, settings=proxied.model_copy(deep=True))
        ids.append(flowhook.emit("user_request", REQUEST, settings=proxied.model_copy(deep=True)))
        assert len(accepted) == 1
    assert spooled(settings) == Counter(ids)


def test_a_forked_child_sends_on_a_connection_of_its_own(settings: Settings) -> None:
    with counting_proxy(settings.gateway_port) as (port, accepted):
        proxied = settings.model_copy(update={"gateway_port": port})
        first = flowhook.emit("user_request", REQUEST, id="parent-1", settings=proxied)
        assert len(accepted) == 1
        child = in_child(lambda: flowhook.emit("user_request", REQUEST, id="child", settings=proxied))
        assert len(accepted) == 2  # the child's own connection: it left its parent's socket alone
        again = flowhook.emit("user_request", REQUEST, id="parent-2", settings=proxied)
        assert len(accepted) == 2  # and the parent's connection still serves the parent
    assert spooled(settings) == Counter([first, child, again])


def test_a_secret_rotated_meanwhile_is_read_again_when_the_gateway_refuses_the_old_one(tmp_path: Path) -> None:
    base = Settings(data_dir=tmp_path, sources_file=tmp_path / "none.yaml", secret_rotation_grace_hours=0)
    with serve(base) as client:
        settings = base.model_copy(update={"gateway_port": client.base_url.port})
        before = flowhook.emit("user_request", REQUEST, id="before", settings=settings)
        secret_store(settings).rotate("emit", settings.source_configs()["emit"])  # the old one is refused at once
        after = flowhook.emit("user_request", REQUEST, id="after", settings=settings)
    close_connections()
    assert spooled(settings) == Counter([before, after])


def test_a_source_config_and_secret_are_read_once_not_per_call(tmp_path: Path) -> None:
    secret_file = tmp_path / "emit.secret"
    secret_file.write_text(generate_secret(SignatureConfig()))
    sources = {"emit": SourceConfig(secret=f"file:{secret_file}")}
    base = Settings(data_dir=tmp_path, sources=sources)
    with serve(base) as client:
        settings = base.model_copy(update={"gateway_port": client.base_url.port})
        ids = [flowhook.emit("user_request", REQUEST, settings=settings)]
        secret_file.unlink()  # neither the gateway nor a sender that read it already reads it again for a while
        ids += [flowhook.emit("user_request", REQUEST, settings=settings.model_copy(deep=True)) for _ in range(3)]
    close_connections()
    assert spooled(settings) == Counter(ids)
