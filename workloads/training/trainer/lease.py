"""One run at a time per checkpoint location: a file lock on local paths, a renewed lease on S3.

A run left behind (workers of a killed launcher, a pod Kubernetes lost track of) must never commit or prune
checkpoints under a new run. Rank 0 holds the location for the whole run:

- Locally, an exclusive `flock` on `<checkpoint_uri>/.lock`. The kernel drops it when the process dies, however
  it dies, so a restart after a crash finds it free at once and a live holder is never mistaken for a dead one.
  A shared file system must support flock (FSx for Lustre does; mount it with `flock`).
- On S3, which has no locks, the object `<checkpoint_uri>/.lease`, created with a conditional write and rewritten
  (again conditionally) every third of `ttl_seconds`. A run that finds it watches it for up to `ttl_seconds`: a
  live holder rewrites it meanwhile (the run refuses to start), a dead one does not (the run takes it over). Only
  ETags are compared, never clocks of different machines.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Protocol

from modelplane.workloads import storage

LOCK_NAME = ".lock"
LEASE_NAME = ".lease"
RENEWALS_PER_TTL = 3

log = logging.getLogger(__name__)


class LeaseHeld(RuntimeError):
    """Another run holds the checkpoint location."""


class LeaseLost(RuntimeError):
    """Another run took the location over from this one (it could not renew in time): this run must stop."""


@dataclass(frozen=True)
class Holder:
    """Who holds a location, as the refused run reports it."""

    host: str
    pid: int
    since: float

    @classmethod
    def this_process(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), time.time())

    def to_json(self, renewal: int = 0) -> str:
        """The holder, and which renewal this is: each one must change the object, hence its ETag."""
        return json.dumps({**asdict(self), "renewal": renewal}, sort_keys=True)

    @staticmethod
    def describe(text: str) -> str:
        try:
            fields = json.loads(text)
            holder = Holder(fields["host"], fields["pid"], fields["since"])
        except (ValueError, TypeError, KeyError):
            return "holder unknown"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(holder.since))
        return f"host {holder.host}, pid {holder.pid}, since {since} UTC"


def refusal(uri: str, holder_text: str) -> LeaseHeld:
    return LeaseHeld(
        f"checkpoint_uri={uri!r}: another run is using it ({Holder.describe(holder_text)}); stop that run and all "
        "its workers, or give this one another checkpoint_uri"
    )


class CheckpointLease(Protocol):
    def acquire(self, holder: Holder) -> None:
        """Take the location, or raise LeaseHeld."""

    def check(self) -> None:
        """Raise LeaseLost unless this run still holds the location (call before committing or pruning)."""

    def release(self) -> None:
        """Give the location up (idempotent)."""


def lease_for(checkpoint_uri: str, ttl_seconds: float) -> CheckpointLease:
    if storage.is_s3(checkpoint_uri):
        return S3Lease(checkpoint_uri, ttl_seconds)
    return LocalLock(Path(checkpoint_uri))


class LocalLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self.handle: IO[str] | None = None

    def acquire(self, holder: Holder) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = self.path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                text = handle.read()
                handle.close()
                raise refusal(str(self.path.parent), text) from None
            # A releasing holder unlinks the file before it unlocks: the file locked must still be the one named.
            if self.locked_file_is_current(handle):
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(holder.to_json())
        handle.flush()
        self.handle = handle

    def locked_file_is_current(self, handle: IO[str]) -> bool:
        try:
            return os.fstat(handle.fileno()).st_ino == self.path.stat().st_ino
        except FileNotFoundError:
            return False

    def check(self) -> None:
        if self.handle is None:
            raise LeaseLost(f"{self.path}: this run does not hold the lock")

    def release(self) -> None:
        if self.handle is None:
            return
        self.path.unlink(missing_ok=True)
        self.handle.close()
        self.handle = None


class S3Lease:
    def __init__(self, checkpoint_uri: str, ttl_seconds: float) -> None:
        self.checkpoint_uri = checkpoint_uri
        self.uri = storage.join(checkpoint_uri, LEASE_NAME)
        self.ttl_seconds = ttl_seconds
        self.etag: str | None = None
        self.lost: str | None = None
        self.renewed_at = 0.0
        self.stop_renewing = threading.Event()
        self.renewer: threading.Thread | None = None

    def acquire(self, holder: Holder) -> None:
        text = holder.to_json()
        try:
            self.etag = storage.put_if_absent(self.uri, text)
        except storage.PreconditionFailed:
            self.etag = self.take_over_when_stale(text)
        self.renewed_at = time.monotonic()
        self.renewer = threading.Thread(target=self.renew_until_released, args=(holder,), daemon=True)
        self.renewer.start()

    def take_over_when_stale(self, text: str) -> str:
        """Watch the lease for one TTL: a holder that renews it is alive; one that does not is gone."""
        seen = storage.read_with_etag(self.uri)
        deadline = time.monotonic() + self.ttl_seconds
        while seen is not None and time.monotonic() < deadline:
            time.sleep(min(self.ttl_seconds / (2 * RENEWALS_PER_TTL), max(0.0, deadline - time.monotonic())))
            now = storage.read_with_etag(self.uri)
            if now is not None and now[1] != seen[1]:
                raise refusal(self.checkpoint_uri, now[0])
            seen = now
        try:
            if seen is None:
                return storage.put_if_absent(self.uri, text)
            etag = storage.put_if_unchanged(self.uri, text, seen[1])
        except storage.PreconditionFailed:
            current = storage.read_with_etag(self.uri)
            raise refusal(self.checkpoint_uri, current[0] if current else "") from None
        log.warning(
            "took over the lease on %s: its holder (%s) stopped renewing it", self.uri, Holder.describe(seen[0])
        )
        return etag

    def renew_until_released(self, holder: Holder) -> None:
        renewal = 0
        while not self.stop_renewing.wait(self.ttl_seconds / RENEWALS_PER_TTL):
            renewal += 1
            try:
                self.etag = storage.put_if_unchanged(self.uri, holder.to_json(renewal), self.etag or "")
                self.renewed_at = time.monotonic()
            except (storage.PreconditionFailed, storage.ObjectMissing):
                self.lost = f"{self.uri}: another run replaced this run's lease"
                return
            except storage.StorageError as error:
                log.warning("could not renew the lease (will retry): %s", error)

    def check(self) -> None:
        if self.lost is None and time.monotonic() - self.renewed_at > self.ttl_seconds:
            self.lost = f"{self.uri}: not renewed for {self.ttl_seconds:g} s; another run may have taken it"
        if self.lost is not None:
            raise LeaseLost(f"{self.lost}: this run stops without writing checkpoints")

    def release(self) -> None:
        self.stop_renewing.set()
        if self.renewer is not None:
            self.renewer.join()
            self.renewer = None
        if self.etag is None or self.lost is not None:
            return
        current = storage.read_with_etag(self.uri)
        if current is not None and current[1] == self.etag:
            storage.delete_object(self.uri)
        self.etag = None
