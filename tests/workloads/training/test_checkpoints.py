from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.workloads import storage
from modelplane.workloads.training.trainer.checkpoints import (
    MARKER_NAME,
    CheckpointMarker,
    CheckpointStore,
    NothingStaged,
    tag_for,
)
from tests.conftest import BUCKET


def marker(step: int, restarts: int = 0) -> CheckpointMarker:
    return CheckpointMarker(step=step, epoch=0, restarts=restarts, timestamp=1000.0 + step, world_size=2, zero_stage=2)


def save(store: CheckpointStore, step: int, restarts: int = 0) -> None:
    """What the trainer does around DeepSpeed: write files into staging, upload them, commit with the marker."""
    tag = tag_for(step)
    staged = store.staging_dir(tag)
    staged.mkdir(parents=True)
    (staged / "mp_rank_00_model_states.pt").write_text(f"weights at {step}")
    store.upload(tag)
    store.commit(tag, marker(step, restarts))


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CheckpointStore:
    if request.param == "local":
        return CheckpointStore(str(tmp_path / "checkpoints"), tmp_path / "scratch")
    request.getfixturevalue("s3_endpoint")
    return CheckpointStore(f"s3://{BUCKET}/jobs/sentiment/checkpoints", tmp_path / "scratch")


def test_no_checkpoint_means_a_fresh_start(store: CheckpointStore) -> None:
    assert store.latest() is None


def test_newest_complete_checkpoint_wins_and_its_files_come_back(store: CheckpointStore) -> None:
    save(store, 100)
    save(store, 200, restarts=1)
    latest = store.latest()
    assert latest is not None
    assert (latest.tag, latest.marker) == ("step-00000200", marker(200, restarts=1))
    directory = store.fetch(latest.tag)
    assert (directory / "mp_rank_00_model_states.pt").read_text() == "weights at 200"
    assert (directory / MARKER_NAME).is_file()


def test_a_checkpoint_without_marker_is_ignored(store: CheckpointStore) -> None:
    save(store, 100)
    tag = tag_for(200)
    staged = store.staging_dir(tag)
    staged.mkdir(parents=True)
    (staged / "mp_rank_00_model_states.pt").write_text("half written")
    store.upload(tag)  # the crash came before the marker
    if not store.on_s3:  # locally an unfinished save never leaves its .incomplete- directory
        assert store.tags() == ["step-00000100"]
    latest = store.latest()
    assert latest is not None and latest.tag == "step-00000100"


def test_pruning_keeps_the_newest_and_drops_leftovers(store: CheckpointStore) -> None:
    for step in (100, 200, 300, 400):
        save(store, step)
    crashed = tag_for(250)
    store.staging_dir(crashed).mkdir(parents=True)
    (store.staging_dir(crashed) / "partial.pt").write_text("")
    store.upload(crashed)
    store.prune(keep=2)
    assert [checkpoint.tag for checkpoint in store.complete()] == ["step-00000300", "step-00000400"]
    assert store.tags() == ["step-00000300", "step-00000400"]
    if not store.on_s3:
        assert sorted(p.name for p in Path(store.uri).iterdir()) == ["step-00000300", "step-00000400"]


def test_discard_removes_an_earlier_attempt(store: CheckpointStore) -> None:
    save(store, 100)
    store.discard(tag_for(100))
    assert store.latest() is None
    assert not storage.exists(storage.join(store.uri, tag_for(100), MARKER_NAME))


def test_keep_must_leave_a_checkpoint(store: CheckpointStore) -> None:
    with pytest.raises(ValueError, match="keep_checkpoints=0"):
        store.prune(keep=0)


def test_marker_round_trips() -> None:
    assert CheckpointMarker.from_json(marker(7).to_json()) == marker(7)


def test_commit_refuses_an_empty_staging_area(store: CheckpointStore) -> None:
    tag = tag_for(300)
    with pytest.raises(NothingStaged, match="nothing to commit"):
        store.commit(tag, marker(300))
    if not store.on_s3:
        store.staging_dir(tag).mkdir(parents=True)
        with pytest.raises(NothingStaged, match="nothing to commit"):
            store.commit(tag, marker(300))
    assert store.latest() is None
    assert not storage.exists(storage.join(store.uri, tag, MARKER_NAME))


def test_markers_without_the_newer_fields_still_load() -> None:
    old = '{"epoch": 0, "restarts": 1, "step": 4, "timestamp": 1.0, "world_size": 2, "zero_stage": 2}'
    loaded = CheckpointMarker.from_json(old)
    assert (loaded.labels, loaded.preempted) == (None, False)
    current = CheckpointMarker(4, 0, 1, 1.0, 2, 2, labels=["a", "b"], preempted=True)
    assert CheckpointMarker.from_json(current.to_json()) == current
