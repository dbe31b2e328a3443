from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.local.processes import free_port
from tests.tiny_model import save_tiny_bert


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT and its WordPiece tokenizer, saved as a Hugging Face model directory."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def write_deepspeed_config(path: Path, zero_stage: int, micro_batch: int = 4, accumulation: int = 1) -> Path:
    path.write_text(
        json.dumps(
            {
                "train_micro_batch_size_per_gpu": micro_batch,
                "gradient_accumulation_steps": accumulation,
                "zero_optimization": {"stage": zero_stage},
                "gradient_clipping": 1.0,
            }
        )
    )
    return path


@pytest.fixture(autouse=True)
def collections_reach_everything_again() -> Iterator[None]:
    """A run in this process freezes its heap (`keep_collections_off_the_run`): thaw it, so one test's garbage
    does not outlive it."""
    yield
    gc.unfreeze()


@pytest.fixture
def one_rank(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This test process as rank 0 of a one-process gloo group."""
    for name, value in {
        "DS_ACCELERATOR": "cpu",
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }.items():
        monkeypatch.setenv(name, value)
    # The group outlives the test: DeepSpeed caches handles on it (its data-parallel groups) that a
    # destroyed and re-created group would leave dangling, so every test in this process shares one.
    yield
