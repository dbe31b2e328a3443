"""One run at a time per checkpoint location: the local file lock and the S3 lease (moto)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.workloads import storage
from modelplane.workloads.training.trainer.lease import (
    LEASE_NAME,
    LOCK_NAME,
    CheckpointLease,
    Holder,
    LeaseHeld,
    LeaseLost,
    LocalLock,
    S3Lease,
    lease_for,
)
from tests.conftest import BUCKET

TTL_SECONDS = 1.5


@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "checkpoints")
    request.getfixturevalue("s3_endpoint")
    return f"s3://{BUCKET}/jobs/sentiment/checkpoints"


@pytest.fixture
def leases() -> Iterator[list[CheckpointLease]]:
    """Leases a test takes; all released at its end, so no renewing thread outlives it."""
    taken: list[CheckpointLease] = []
    yield taken
    for lease in taken:
        lease.release()


def take(location: str, leases: list[CheckpointLease]) -> CheckpointLease:
    lease = lease_for(location, TTL_SECONDS)
    leases.append(lease)
    lease.acquire(Holder.this_process())
    return lease


def test_a_held_location_refuses_a_second_run_naming_the_holder(location: str, leases: list[CheckpointLease]) -> None:
    first = take(location, leases)
    with pytest.raises(LeaseHeld, match=rf"checkpoint_uri='{location}': another run is using it \(host .+, pid \d+"):
        take(location, leases)
    first.check()
    first.release()
    take(location, leases).check()


def test_release_leaves_nothing_behind(location: str, leases: list[CheckpointLease]) -> None:
    take(location, leases).release()
    assert not storage.exists(storage.join(location, LOCK_NAME if not storage.is_s3(location) else LEASE_NAME))


def test_a_dead_runs_s3_lease_is_taken_over_after_one_ttl(s3_endpoint: str, leases: list[CheckpointLease]) -> None:
    location = f"s3://{BUCKET}/jobs/crashed/checkpoints"
    # What a SIGKILLed run leaves: its lease object, renewed by nobody.
    storage.put_if_absent(storage.join(location, LEASE_NAME), Holder("gone", 1, 0.0).to_json())
    lease = take(location, leases)
    lease.check()
    assert isinstance(lease, S3Lease) and storage.read_with_etag(lease.uri) is not None


def test_a_run_whose_lease_was_replaced_stops_before_writing(s3_endpoint: str, leases: list[CheckpointLease]) -> None:
    location = f"s3://{BUCKET}/jobs/taken/checkpoints"
    lease = take(location, leases)
    assert isinstance(lease, S3Lease)
    storage.write_text(lease.uri, Holder("other", 2, 0.0).to_json())
    deadline = time.monotonic() + 10 * TTL_SECONDS
    while lease.lost is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(LeaseLost, match="another run replaced this run's lease"):
        lease.check()


def test_a_released_local_lock_cannot_be_checked(tmp_path: Path) -> None:
    lock = LocalLock(tmp_path)
    lock.acquire(Holder.this_process())
    lock.release()
    with pytest.raises(LeaseLost):
        lock.check()
