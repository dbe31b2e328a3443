"""Atomic checkpoints in a directory or under an s3:// prefix, and finding the newest complete one on restart.

Layout under `checkpoint_uri`:

    step-00000500/                 one DeepSpeed checkpoint (its model and optimizer files, one set per rank)
        mp_rank_00_model_states.pt
        zero_pp_rank_0_mp_rank_00_optim_states.pt ...
        COMPLETE                   JSON marker (step, epoch, restarts, timestamp, ...), written last
    .incomplete-step-00000600/     local only: a save in progress (or a crashed one), renamed when complete

A checkpoint counts only once its `COMPLETE` marker exists. Locally DeepSpeed writes into the
`.incomplete-` directory, the marker goes in last and a rename commits it; on S3 every node uploads its
ranks' files first and the marker object is put last. A local `checkpoint_uri` must be shared by all
nodes (an FSx for Lustre volume, say); on S3 each node stages its files under `work_dir`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from modelplane.workloads import storage

MARKER_NAME = "COMPLETE"
INCOMPLETE_PREFIX = ".incomplete-"
TAG_PATTERN = re.compile(r"^step-(\d+)$")
S3_DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


@dataclass(frozen=True)
class CheckpointMarker:
    """What a resumed run restores besides DeepSpeed's own state."""

    step: int
    epoch: int
    restarts: int
    """Resumes before this checkpoint was written; the resumed run counts one more."""
    timestamp: float
    """Unix time the checkpoint was committed."""
    world_size: int
    zero_stage: int
    """ZeRO stage > 0 shards optimizer state by rank: such a checkpoint loads only into `world_size` ranks."""
    labels: list[str] | None = None
    """The classes of its head, in order (None in checkpoints older than this field)."""
    preempted: bool = False
    """Written because the run was told to stop (SIGTERM): resuming from it is no failure restart."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CheckpointMarker:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class CompleteCheckpoint:
    tag: str
    marker: CheckpointMarker


def tag_for(step: int) -> str:
    """Zero-padded, so names sort in step order."""
    return f"step-{step:08d}"


def step_of(tag: str) -> int | None:
    match = TAG_PATTERN.match(tag)
    return int(match.group(1)) if match else None


class NothingStaged(RuntimeError):
    """A commit found no files to commit: it would make a checkpoint of a marker alone."""


class CheckpointStore:
    """Checkpoints under `uri`; `staging_root` is node-local scratch used when `uri` is on S3."""

    def __init__(self, uri: str, staging_root: Path) -> None:
        self.uri = uri.rstrip("/")
        self.staging_root = staging_root

    @property
    def on_s3(self) -> bool:
        return storage.is_s3(self.uri)

    def staging_dir(self, tag: str) -> Path:
        """Where DeepSpeed writes checkpoint `tag` before it is committed."""
        if self.on_s3:
            return self.staging_root / "checkpoints" / tag
        return Path(self.uri) / f"{INCOMPLETE_PREFIX}{tag}"

    def upload(self, tag: str) -> None:
        """S3: copy this node's staged files (call on one rank per node, after every rank saved). Local: nothing."""
        if not self.on_s3:
            return
        staged = self.staging_dir(tag)
        storage.upload_tree(staged, storage.join(self.uri, tag))
        shutil.rmtree(staged, ignore_errors=True)

    def commit(self, tag: str, marker: CheckpointMarker) -> None:
        """Write the marker last, making `tag` the checkpoint a restart resumes from (rank 0, after every upload).

        Refuses a tag with no files: `latest()` would pick a marker alone, and the resume would fail on it.
        """
        if self.on_s3:
            if not storage.exists(storage.join(self.uri, tag) + "/"):
                raise NothingStaged(f"{storage.join(self.uri, tag)}: no checkpoint files uploaded; nothing to commit")
            storage.write_text(storage.join(self.uri, tag, MARKER_NAME), marker.to_json())
            return
        staged = self.staging_dir(tag)
        if not staged.is_dir() or not any(path.name != MARKER_NAME for path in staged.iterdir()):
            raise NothingStaged(f"{staged}: no checkpoint files staged; nothing to commit")
        storage.write_text(str(staged / MARKER_NAME), marker.to_json())
        final = Path(self.uri) / tag
        if final.exists():
            shutil.rmtree(final)
        os.replace(staged, final)

    def complete(self) -> list[CompleteCheckpoint]:
        """Committed checkpoints, oldest first; directories without a marker are skipped."""
        found = []
        for name in self.tags():
            marker_uri = storage.join(self.uri, name, MARKER_NAME)
            if storage.exists(marker_uri):
                found.append(CompleteCheckpoint(name, CheckpointMarker.from_json(storage.read_text(marker_uri))))
        return found

    def latest(self) -> CompleteCheckpoint | None:
        checkpoints = self.complete()
        return checkpoints[-1] if checkpoints else None

    def tags(self) -> list[str]:
        """Names of `step-N` entries, committed or not, in step order."""
        if not storage.exists(self.uri):
            return []
        names = [name for name in storage.list_children(self.uri) if step_of(name) is not None]
        return sorted(names, key=lambda name: step_of(name) or 0)

    def fetch(self, tag: str) -> Path:
        """A local directory holding checkpoint `tag`: the directory itself, or an S3 download (one rank per node)."""
        if not self.on_s3:
            return Path(self.uri) / tag
        target = self.local_copy(tag)
        shutil.rmtree(target, ignore_errors=True)
        return storage.download_tree(storage.join(self.uri, tag), target)

    def local_copy(self, tag: str) -> Path:
        return Path(self.uri) / tag if not self.on_s3 else self.staging_root / "resume" / tag

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` complete checkpoints and every leftover incomplete one; the names deleted.

        Call on rank 0 right after a commit, when no other save is in flight.
        """
        if keep < 1:
            raise ValueError(f"keep_checkpoints={keep}: must be at least 1, or a restart would have nothing to load")
        complete = [checkpoint.tag for checkpoint in self.complete()]
        newest = step_of(complete[-1]) if complete else None
        doomed = complete[:-keep]
        if newest is not None:
            doomed += [tag for tag in self.tags() if tag not in complete and (step_of(tag) or 0) < newest]
        for tag in doomed:
            self.delete(tag)
        if not self.on_s3 and Path(self.uri).is_dir():
            for leftover in Path(self.uri).glob(f"{INCOMPLETE_PREFIX}*"):
                shutil.rmtree(leftover, ignore_errors=True)
                doomed.append(leftover.name)
        return doomed

    def discard(self, tag: str) -> None:
        """Remove whatever an earlier, unfinished save of `tag` left, committed or not (rank 0, before saving)."""
        self.delete(tag)
        if not self.on_s3:
            shutil.rmtree(self.staging_dir(tag), ignore_errors=True)

    def delete(self, tag: str) -> None:
        if not self.on_s3:
            shutil.rmtree(Path(self.uri) / tag, ignore_errors=True)
            return
        location = storage.parse_s3(storage.join(self.uri, tag))
        client = storage.s3_client()
        keys = [
            {"Key": item["Key"]}
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=location.bucket, Prefix=location.key + "/"
            )
            for item in page.get("Contents", [])
        ]
        for start in range(0, len(keys), S3_DELETE_BATCH):
            client.delete_objects(Bucket=location.bucket, Delete={"Objects": keys[start : start + S3_DELETE_BATCH]})
