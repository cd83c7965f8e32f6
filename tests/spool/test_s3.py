"""What only the S3 spool has: its keys, selection by URL, idempotent uploads, stray markers cleared, re-entrant
claims, errors when S3 cannot be reached, and the clock-skew warning."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from pydantic import ValidationError

from flowhook.settings import Settings
from flowhook.spool import BatchNotFound, S3Spool, Spool, SpoolUnavailable, State, open_spool
from flowhook.spool.batches import encode_event
from flowhook.spool.config import S3Connection
from flowhook.spool.s3_objects import S3Objects
from flowhook.stack import free_port
from flowhook.worker import steps
from tests import s3
from tests.factories import make_event

PREFIX = "flowhook/spool"


@pytest.fixture
def spool(moto_s3: str) -> S3Spool:
    client = s3.client(moto_s3)
    return S3Spool(client, s3.new_bucket(client), PREFIX)


def keys(spool: S3Spool, under: str = "") -> list[str]:
    """The spool's keys, without its prefix."""
    return [key.removeprefix(f"{PREFIX}/") for key in s3.keys(spool.objects.client, spool.bucket, f"{PREFIX}/{under}")]


@pytest.mark.usefixtures("aws_env")
def test_the_spool_url_setting_selects_the_backend(tmp_path: Path, moto_s3: str) -> None:
    local = open_spool(Settings(data_dir=tmp_path))
    assert isinstance(local, Spool) and local.root == tmp_path / "spool"
    remote = open_spool(
        Settings(data_dir=tmp_path, spool_url="s3://my-bucket/a/b/", s3=S3Connection(endpoint_url=moto_s3))
    )
    assert isinstance(remote, S3Spool)
    assert (remote.bucket, remote.prefix, remote.url) == ("my-bucket", "a/b", "s3://my-bucket/a/b")


@pytest.mark.parametrize("url", ["my-bucket/prefix", "s3://", "s3:///prefix", "file:///tmp/spool"])
def test_a_spool_url_that_is_not_s3_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="s3://bucket"):
        Settings(spool_url=url)


def test_a_batch_through_every_state_leaves_only_its_content_and_done_marker(spool: S3Spool) -> None:
    ref = spool.write_batch([make_event(1), make_event(2)])
    batch_id = ref.batch_id
    assert ref.spool == spool.url  # the claim check: where the batch waits
    assert keys(spool) == [f"batches/{batch_id}.jsonl", f"state/{batch_id}/ready"]
    spool.mark_sent(batch_id)
    spool.note_launch(batch_id, "run-1")
    assert spool.claim_events(batch_id, owner="run-1") == [make_event(1), make_event(2)]
    assert keys(spool, "state/") == [f"state/{batch_id}/{name}" for name in ("claim", "ready", "sent")]
    spool.complete(batch_id)
    assert keys(spool) == [f"batches/{batch_id}.jsonl", f"done/{batch_id}"]


def test_uploading_a_batch_again_changes_nothing_and_a_done_batch_is_not_revived(spool: S3Spool) -> None:
    ref = spool.write_batch([make_event(1)])
    data = encode_event(make_event(1))
    again = spool.put_batch(ref, data)  # the gateway crashed between the upload and deleting its file
    assert again is not None and again.count == 1
    assert keys(spool) == [f"batches/{ref.batch_id}.jsonl", f"state/{ref.batch_id}/ready"]
    spool.claim_events(ref.batch_id)
    spool.complete(ref.batch_id)
    assert spool.put_batch(ref, data) is None  # ... and restarted after a run stored it: nothing to hand on
    assert keys(spool, "state/") == []
    assert spool.state_of(ref.batch_id) is State.DONE


def test_a_late_claim_or_sent_marker_of_a_done_batch_is_cleared(spool: S3Spool) -> None:
    batch_id = spool.write_batch([make_event(1)]).batch_id
    spool.claim_events(batch_id, owner="run-1")
    spool.complete(batch_id)
    spool.objects.put(f"{PREFIX}/state/{batch_id}/sent")  # a forwarder that raced the complete
    assert spool.waiting("user_request") == [batch_id]
    assert spool.claim_events(batch_id, owner="run-2") is None  # the run that meets it clears it
    assert keys(spool, "state/") == []
    assert spool.waiting("user_request") == []


def test_a_claim_left_by_a_crash_during_complete_is_cleared_by_the_sweep(spool: S3Spool) -> None:
    batch_id = spool.write_batch([make_event(1)]).batch_id
    spool.claim_events(batch_id, owner="run-1")
    spool.objects.put(f"{PREFIX}/done/{batch_id}")  # then the run died
    assert spool.stale(unclaimed_after=30, claimed_after=600, dead_run_after=30) == []
    assert keys(spool, "state/") == []
    assert spool.state_of(batch_id) is State.DONE


def test_a_run_retrying_its_claim_gets_its_own_batch_and_no_other_run_does(spool: S3Spool) -> None:
    batch_id = spool.write_batch([make_event(1)]).batch_id
    assert spool.claim_events(batch_id, owner="run-1") == [make_event(1)]
    # The task failed after the claim (say, reading the batch timed out) and Prefect retries it.
    assert spool.claim_events(batch_id, owner="run-1") == [make_event(1)]
    assert spool.claim_events(batch_id, owner="run-2") is None
    assert spool.claim_events(batch_id) is None


def test_prefixes_keep_spools_in_one_bucket_apart(spool: S3Spool) -> None:
    other = S3Spool(spool.objects.client, spool.bucket, "elsewhere")
    mine = spool.write_batch([make_event(1)]).batch_id
    assert other.waiting("user_request") == []
    with pytest.raises(BatchNotFound):
        other.claim_events(mine)
    assert spool.state_of(mine) is State.READY


def test_a_worker_refuses_a_batch_that_waits_in_another_spool(spool: S3Spool) -> None:
    ref = spool.write_batch([make_event(1)])
    elsewhere = ref.model_copy(update={"spool": "s3://another-bucket/flowhook"})
    with pytest.raises(BatchNotFound, match="waits in s3://another-bucket/flowhook, but this run's spool is s3://"):
        steps.claim(spool, elsewhere, owner="run-1")
    assert steps.claim(spool, ref, owner="run-1") == [make_event(1)]


def test_s3_out_of_reach_or_a_missing_bucket_is_spool_unavailable(spool: S3Spool, moto_s3: str) -> None:
    down = S3Spool(s3.client(f"http://127.0.0.1:{free_port()}"), spool.bucket, PREFIX)
    with pytest.raises(SpoolUnavailable, match="unreachable") as caught:
        down.touch_lease("user_request", "run-1")
    assert isinstance(caught.value, OSError)
    with pytest.raises(SpoolUnavailable):
        down.waiting("user_request")
    missing = S3Spool(s3.client(moto_s3), "no-such-bucket-here", PREFIX)
    with pytest.raises(SpoolUnavailable, match="NoSuchBucket"):
        missing.write_batch([make_event(1)])


def test_a_clock_far_from_s3s_is_warned_about_once(spool: S3Spool, caplog: pytest.LogCaptureFixture) -> None:
    skewed = S3Spool(spool.objects.client, spool.bucket, PREFIX, clock=lambda: time.time() - 30)
    with caplog.at_level(logging.WARNING, logger="flowhook.spool.s3"):
        skewed.touch_lease("user_request", "run-1")
        skewed.touch_lease("user_request", "run-1")
        spool.touch_lease("user_request", "run-2")
    [record] = caplog.records
    assert re.search(r"clock is (29|30)\.\d s behind S3's", record.getMessage()), record.getMessage()


@pytest.mark.parametrize(("then", "claimed"), [("PreconditionFailed", False), (None, True)])
def test_a_claim_meeting_a_concurrent_conditional_write_asks_again(then: str | None, claimed: bool) -> None:
    """Real S3 answers 409 ConditionalRequestConflict while another conditional write on the key is in progress."""
    client = boto3.session.Session().client(
        "s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    objects = S3Objects(client, "any-bucket")
    with Stubber(client) as stub:
        stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
        if then is None:
            stub.add_response("put_object", {})
        else:
            stub.add_client_error("put_object", then, http_status_code=412)
        assert objects.put(f"{PREFIX}/state/b/claim", b"run-1", absent=True) is claimed
        stub.assert_no_pending_responses()
