"""The gateway with the spool on S3 (moto's server): the inbox stays on disk, each sealed batch is uploaded and
only then deleted locally and announced; with S3 down it waits on disk and goes up once S3 is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from flowhook.gateway import MemorySink
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.gateway.uploader import upload_batch
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig
from flowhook.spool import BatchRef, S3Spool, Spool, State
from flowhook.spool.config import BatchPolicy, S3Connection
from flowhook.stack import free_port
from flowhook.worker.config import DrainPolicy
from tests import s3
from tests.factories import T0, make_event
from tests.servers import serve

STANDARD = SignatureConfig()
SECRET = generate_secret(STANDARD)
PREFIX = "gateway/spool"


pytestmark = pytest.mark.usefixtures("aws_env")  # the gateway builds its S3 client from boto3's chain


class UploadCheckingSink(MemorySink):
    """Records, as each batch is announced, whether its content is in S3 already."""

    def __init__(self, spool: S3Spool) -> None:
        super().__init__()
        self.spool = spool
        self.in_s3_when_announced: list[bool] = []

    async def emit(self, refs: Sequence[BatchRef]) -> None:
        for ref in refs:
            self.in_s3_when_announced.append(await asyncio.to_thread(_in_s3, self.spool, ref.batch_id))
        await super().emit(refs)


def _in_s3(spool: S3Spool, batch_id: str) -> bool:
    try:
        spool.ref(State.READY, batch_id)
    except FileNotFoundError:
        return False
    return True


def settings_for(tmp_path: Path, endpoint: str, bucket: str, **overrides: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        webhook_secret=SECRET,
        sources={"shop": SourceConfig()},
        batch=BatchPolicy(max_events=50, max_seconds=0.1, hold_seconds=0),
        spool_url=f"s3://{bucket}/{PREFIX}",
        s3=S3Connection(endpoint_url=endpoint),
        **overrides,
    )


def post(client: Any, n: int) -> list[str]:
    body = orjson.dumps({"type": "user_request", "data": {"user_id": f"u{n}", "action": "search"}})
    headers = {"content-type": "application/json", **sign(STANDARD, body, SECRET, msg_id=f"m{n}")}
    response = client.post("/hooks/shop", content=body, headers=headers)
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["ids"]
    return ids


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def local_batches(settings: Settings, state: State) -> list[str]:
    return [batch_id for batch_id, _ in Spool(settings.spool_dir).entries(state)]


@pytest.fixture
def bucket(moto_s3: str) -> str:
    return s3.new_bucket(s3.client(moto_s3))


def test_a_sealed_batch_is_in_s3_before_prefect_hears_of_it_and_then_leaves_the_disk(
    tmp_path: Path, moto_s3: str, bucket: str
) -> None:
    settings = settings_for(tmp_path, moto_s3, bucket, drain=DrainPolicy(idle_seconds=0))
    spool = S3Spool(s3.client(moto_s3), bucket, PREFIX)
    sink = UploadCheckingSink(spool)
    with serve(settings, sink) as client:
        ids = [event_id for n in range(3) for event_id in post(client, n)]
        wait_for(lambda: sum(ref.count for ref in sink.sent) == 3)
        wait_for(lambda: all(spool.state_of(ref.batch_id) is State.SENT for ref in sink.sent))
        health = client.get("/health").json()
    assert sink.in_s3_when_announced and all(sink.in_s3_when_announced)
    assert all(ref.spool == f"s3://{bucket}/{PREFIX}" for ref in sink.sent)  # the claim check
    assert health["uploaded"] == len(sink.sent) and health["upload_failures"] == 0
    assert local_batches(settings, State.READY) == [] and local_batches(settings, State.SENT) == []
    stored = [e.id for ref in sink.sent for e in spool.claim_events(ref.batch_id) or []]
    assert sorted(stored) == sorted(ids)


def test_with_s3_down_batches_wait_on_disk_and_go_up_and_on_once_s3_is_back(
    tmp_path: Path, moto_s3: str, bucket: str
) -> None:
    port = free_port()  # nothing listens here yet: S3 is down
    settings = settings_for(tmp_path, f"http://127.0.0.1:{port}", bucket, drain=DrainPolicy(idle_seconds=0))
    spool = S3Spool(s3.client(moto_s3), bucket, PREFIX)  # the same objects, through the server that is up
    sink = UploadCheckingSink(spool)
    with serve(settings, sink) as client:
        ids = [event_id for n in range(5) for event_id in post(client, n)]  # acknowledged: S3 is not needed
        wait_for(lambda: client.get("/health").json()["upload_failures"] >= 2, timeout=30)
        waiting = local_batches(settings, State.READY)
        assert waiting and sink.sent == []  # nothing announced that is not in S3
        local = Spool(settings.spool_dir)
        on_disk = [e.id for b in waiting for e in local.read(local.path(State.READY, b))]
        assert sorted(on_disk) == sorted(ids)
        assert s3.keys(s3.client(moto_s3), bucket) == []

        with s3.moto_server(port):  # S3 is back
            wait_for(lambda: sum(ref.count for ref in sink.sent) == 5, timeout=30)
            wait_for(lambda: all(spool.state_of(ref.batch_id) is State.SENT for ref in sink.sent))
            assert local_batches(settings, State.READY) == []
            assert client.get("/health").json()["upload_backlog"] == 0
    assert all(sink.in_s3_when_announced)
    assert {ref.batch_id for ref in sink.sent} == set(waiting)
    assert len(sink.sent) == len(waiting)  # each announced once


def test_batches_left_on_disk_by_a_stop_are_uploaded_and_announced_at_start(
    tmp_path: Path, moto_s3: str, bucket: str
) -> None:
    settings = settings_for(tmp_path, moto_s3, bucket)
    left = Spool(settings.spool_dir).write_batch([make_event(1), make_event(2)])  # S3 was down when it stopped
    spool = S3Spool(s3.client(moto_s3), bucket, PREFIX)
    sink = UploadCheckingSink(spool)
    with serve(settings, sink):
        wait_for(lambda: len(sink.sent) == 1)
    [ref] = sink.sent
    assert (ref.batch_id, ref.count) == (left.batch_id, 2) and sink.in_s3_when_announced == [True]
    assert local_batches(settings, State.READY) == []
    assert spool.claim_events(ref.batch_id) == [make_event(1), make_event(2)]


def test_with_a_run_awake_for_the_type_the_batch_is_uploaded_but_no_run_is_woken(
    tmp_path: Path, moto_s3: str, bucket: str
) -> None:
    settings = settings_for(tmp_path, moto_s3, bucket)
    spool = S3Spool(s3.client(moto_s3), bucket, PREFIX)
    spool.touch_lease("user_request", "run-1")  # a run on another machine is awake for user_request
    sink = UploadCheckingSink(spool)
    with serve(settings, sink) as client:
        post(client, 1)
        wait_for(lambda: len(spool.waiting("user_request")) == 1)
        time.sleep(0.3)
        assert sink.sent == [] and client.get("/health").json()["wakeups_saved"] == 1
    [batch] = spool.pending("user_request", max_events=10)  # that run takes it
    assert batch.count == 1 and spool.state_of(batch.batch_id) is State.READY


def test_an_upload_repeated_after_a_crash_writes_the_same_key_and_nothing_once_done(
    tmp_path: Path, moto_s3: str, bucket: str
) -> None:
    local = Spool(tmp_path / "spool")
    shared = S3Spool(s3.client(moto_s3), bucket, PREFIX)
    ref = local.write_batch([make_event(1)])
    data = local.path(State.READY, ref.batch_id).read_bytes()
    shared.put_batch(ref, data)  # uploaded; then the gateway died before deleting its file
    again = upload_batch(local, shared, ref)  # at the next start
    assert again is not None and (again.batch_id, again.count, again.spool) == (ref.batch_id, 1, shared.url)
    assert not local.path(State.READY, ref.batch_id).exists()
    assert s3.keys(s3.client(moto_s3), bucket) == [
        f"{PREFIX}/batches/{ref.batch_id}.jsonl",
        f"{PREFIX}/state/{ref.batch_id}/ready",
    ]
    assert upload_batch(local, shared, ref) is None  # submitted twice: gone from the disk, nothing to do

    shared.claim_events(ref.batch_id)
    shared.complete(ref.batch_id)
    local.put_batch(ref, data)  # uploaded, stored by a run, and still on the gateway's disk after a crash
    assert upload_batch(local, shared, ref) is None  # nothing to announce
    assert shared.state_of(ref.batch_id) is State.DONE and s3.keys(s3.client(moto_s3), bucket, f"{PREFIX}/state/") == []


def test_the_forwarder_goes_on_when_s3_fails_after_an_announcement(moto_s3: str, bucket: str) -> None:
    from flowhook.gateway.forwarder import Forwarder

    down = S3Spool(s3.client(f"http://127.0.0.1:{free_port()}"), bucket, PREFIX)  # mark_sent cannot reach S3
    sink = MemorySink()

    async def scenario() -> None:
        forwarder = Forwarder(down, sink)
        task = asyncio.create_task(forwarder.run())
        for n in range(2):
            forwarder.submit(BatchRef(batch_id=f"user_request-{n}-ab", event_type="user_request", count=1, sealed=T0))
            deadline = time.monotonic() + 20
            while len(sink.sent) <= n:
                assert not task.done() and time.monotonic() < deadline
                await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(scenario())
    assert [ref.batch_id for ref in sink.sent] == ["user_request-0-ab", "user_request-1-ab"]
