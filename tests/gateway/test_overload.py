"""Overload is answered, not queued: past `max_in_flight` requests being processed, a delivery is answered 503
`overloaded` with Retry-After as soon as its head is in, over raw sockets against the gateway as `flowhook
gateway` runs it; what was accepted is in the spool once, the refusals are counted, and below the limit
nothing is refused. (The other trigger, the loop's lag, is `test_admission.py`'s; here it is set out of
reach, so that the counts depend on requests in flight alone.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson
import pytest

from flowhook.events import derive_event_id
from flowhook.gateway.config import IngressLimits
from flowhook.sampling.log import read_records, sample_files
from flowhook.settings import Settings
from flowhook.sources.webhook import SourceConfig
from tests.factories import spooled_events
from tests.gateway.test_http import SECRET, Connection, delivery
from tests.servers import serve

LIMIT = 4
Start = Callable[..., tuple[int, Settings]]


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """Start a gateway (source `shop`, `ingress` overrides); its port and settings. Stopped (and its counts
    written) at the end of the test."""
    monkeypatch.delenv("FLOWHOOK_WEBHOOK_SECRET", raising=False)
    with ExitStack() as running:

        def start(**ingress: Any) -> tuple[int, Settings]:
            # The loop's lag off (a loaded test machine is late now and then): these count requests in flight.
            options = {"body_timeout_seconds": 30.0, "max_in_flight": LIMIT, "max_loop_lag_seconds": 3600.0}
            limits = IngressLimits(**{**options, **ingress})
            settings = Settings(
                data_dir=tmp_path, webhook_secret=SECRET, sources={"shop": SourceConfig()}, ingress=limits
            )
            client = running.enter_context(serve(settings))
            assert client.base_url.port is not None
            return client.base_url.port, settings

        yield start


def _spooled(settings: Settings) -> list[str]:
    return [event.id for event in spooled_events(settings.spool_dir)]


def _burst(port: int, names: list[str]) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """Each delivery sent whole on a connection of its own, all at once (released together); their answers."""
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
    go = threading.Event()

    def send(name: str) -> None:
        conn = Connection(port)
        with conn.sock:
            go.wait(10)
            conn.sock.sendall(delivery(name))
            answers[name] = conn.response()

    threads = [threading.Thread(target=send, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # every connection open
    go.set()
    for thread in threads:
        thread.join(20)
    assert len(answers) == len(names)
    return answers


def _assert_overloaded(answer: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = answer
    assert status == 503, body
    payload = orjson.loads(body)
    assert payload["code"] == "overloaded"
    assert payload["message"][:1].isupper()
    assert int(headers["retry-after"]) >= 1
    assert headers.get("connection") != "close"  # the sender may retry on the same connection


def test_past_the_limit_a_delivery_is_refused_at_once_and_the_held_ones_are_kept(gateway: Start) -> None:
    port, settings = gateway()
    with ExitStack() as held:
        conns = []
        for n in range(LIMIT):  # heads in, bodies held back: LIMIT deliveries being processed
            conn = Connection(port)
            held.enter_context(conn.sock)
            whole = delivery(f"msg_held_{n}")
            conn.sock.sendall(whole[:-10])
            conns.append((conn, whole[-10:]))
        time.sleep(0.3)
        # Answered while the held ones are still unanswered: refused at once, not queued behind them.
        answers = _burst(port, [f"msg_late_{n}" for n in range(20)])
        for answer in answers.values():
            _assert_overloaded(answer)
        late = Connection(port)  # the same connection serves a retry once there is room
        with late.sock:
            late.sock.sendall(delivery("msg_retry"))
            _assert_overloaded(late.response())
            for conn, rest in conns:
                conn.sock.sendall(rest)
                assert conn.response()[0] == 202
            late.sock.sendall(delivery("msg_retry"))
            assert late.response()[0] == 202
        health = Connection(port)
        with health.sock:  # never refused as overload: only deliveries are
            health.sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert health.response()[0] == 200
    accepted = [derive_event_id("shop", f"msg_held_{n}") for n in range(LIMIT)] + [derive_event_id("shop", "msg_retry")]
    assert sorted(_spooled(settings)) == sorted(accepted)


def test_a_burst_well_past_the_limit_is_partly_refused_and_what_is_accepted_is_stored_once(gateway: Start) -> None:
    port, settings = gateway(max_in_flight=2)
    with ExitStack() as held:
        conn = Connection(port)  # one delivery held open: the burst shares the one other slot
        held.enter_context(conn.sock)
        whole = delivery("msg_held")
        conn.sock.sendall(whole[:-10])
        time.sleep(0.3)
        names = [f"msg_burst_{n}" for n in range(40)]
        answers = _burst(port, names)
        conn.sock.sendall(whole[-10:])
        assert conn.response()[0] == 202
    accepted = [name for name, (status, _, _) in answers.items() if status == 202]
    refused = [answer for answer in answers.values() if answer[0] != 202]
    assert refused, "a burst of 40 at a limit of 2 was not refused at all"
    for answer in refused:
        _assert_overloaded(answer)
    ids = _spooled(settings)
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(derive_event_id("shop", name) for name in [*accepted, "msg_held"])


def test_below_the_limit_nothing_is_refused(gateway: Start) -> None:
    port, settings = gateway(max_in_flight=64)
    names = [f"msg_{n}" for n in range(40)]
    answers = _burst(port, names)
    assert {name: status for name, (status, _, _) in answers.items()} == dict.fromkeys(names, 202)
    assert sorted(_spooled(settings)) == sorted(derive_event_id("shop", name) for name in names)


def test_refusals_are_counted_under_their_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWHOOK_WEBHOOK_SECRET", raising=False)
    limits = IngressLimits(body_timeout_seconds=30.0, max_in_flight=1, max_loop_lag_seconds=3600.0)
    settings = Settings(data_dir=tmp_path, webhook_secret=SECRET, sources={"shop": SourceConfig()}, ingress=limits)
    with serve(settings) as client:
        assert client.base_url.port is not None
        port = client.base_url.port
        conn = Connection(port)
        with conn.sock:
            whole = delivery("msg_held")
            conn.sock.sendall(whole[:-10])
            time.sleep(0.3)
            answers = _burst(port, [f"msg_{n}" for n in range(5)])
            conn.sock.sendall(whole[-10:])
            assert conn.response()[0] == 202
        time.sleep(1.2)  # a second's counts are written once it has ended
    assert [answer[0] for answer in answers.values()] == [503] * 5
    rows = [
        record
        for _, path in sample_files(settings.samples_dir)
        for record in read_records(path)
        if record.get("kind") == "ingress"
    ]
    counted: dict[tuple[str, int, str], int] = {}
    for r in rows:  # a second at a time
        key = (r["source"], r["status"], r["code"])
        counted[key] = counted.get(key, 0) + r["deliveries"]
    assert counted.get(("shop", 503, "overloaded")) == 5, counted
    assert counted[("shop", 202, "accepted")] == 1


def test_a_pipelined_delivery_refused_as_overload_waits_its_turn(gateway: Start) -> None:
    port, settings = gateway(max_in_flight=1)
    conn = Connection(port)
    with conn.sock:
        # Both heads arrive in one read: the first is running when the second's head is in, so the second is
        # refused, answered after the first, and the connection serves a third.
        conn.sock.sendall(delivery("msg_first") + delivery("msg_second"))
        assert conn.response()[0] == 202
        _assert_overloaded(conn.response())
        # The refusal of the second was answered by a task of its own (it waited its turn in uvicorn's cycle);
        # with uvloop that task may still be in the server's count when the third's head arrives, which is
        # then refused too: the same delivery again, as a sender would, until the connection serves it.
        for _ in range(20):
            conn.sock.sendall(delivery("msg_third"))
            status = conn.response()[0]
            if status != 503:
                break
            time.sleep(0.05)
        assert status == 202
    assert sorted(_spooled(settings)) == sorted(derive_event_id("shop", n) for n in ("msg_first", "msg_third"))
