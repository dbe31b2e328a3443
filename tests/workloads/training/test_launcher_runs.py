"""2-rank jobs under modelplane's launcher (torchrun): preemption, a stalled rank, a refused second run, and bad
input ending the output with one line. A tiny BERT on CPU, a few steps each."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.local.processes import free_port
from modelplane.workloads.training.synthetic import synthetic_rows, write_jsonl
from modelplane.workloads.training.trainer.checkpoints import CheckpointStore, tag_for
from modelplane.workloads.training.trainer.outcome import FAILED_EXIT_CODE, PREEMPTED_EXIT_CODE
from tests.workloads.training.conftest import write_deepspeed_config

pytestmark = pytest.mark.slow
JOB = "launched"
WORLD_SIZE = 2
WAIT_SECONDS = 180
STEP_LINE = re.compile(r"epoch \d+ step (\d+)/")


def environment(tmp_path: Path, base_model: Path, **variables: str) -> dict[str, str]:
    return {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": "1",
        "MODELPLANE_JOB_NAME": JOB,
        "MODELPLANE_DATASET_URI": str(write_jsonl(tmp_path / "news.jsonl", synthetic_rows(96, seed=5))),
        "MODELPLANE_EVAL_FRACTION": "0",
        "MODELPLANE_LABELS": "negative,neutral,positive",
        "MODELPLANE_BASE_MODEL": str(base_model),
        "MODELPLANE_CHECKPOINT_URI": str(tmp_path / "checkpoints"),
        "MODELPLANE_MODEL_URI": str(tmp_path / "model"),
        "MODELPLANE_DEEPSPEED_CONFIG": str(write_deepspeed_config(tmp_path / "ds.json", zero_stage=2)),
        "MODELPLANE_WORK_DIR": str(tmp_path / "work"),
        "MODELPLANE_MAX_LENGTH": "24",
        "MODELPLANE_METRICS_PORT": "0",
        "MODELPLANE_PROGRESS": "false",
        "MODELPLANE_LOG_FORMAT": "text",
        "MODELPLANE_LOG_EVERY_STEPS": "1",
        "MODELPLANE_CHECKPOINT_EVERY_STEPS": "100000",
        **variables,
    }


def launcher_command(*flags: str) -> list[str]:
    return [
        *(sys.executable, "-m", "modelplane.workloads.training.trainer.launch", "--nproc_per_node", str(WORLD_SIZE)),
        *("--master_addr", "127.0.0.1", "--master_port", str(free_port())),
        *("--module", "modelplane.workloads.training.trainer", *flags),
    ]


@pytest.fixture
def jobs() -> Iterator[list[subprocess.Popen[str]]]:
    """Jobs started in the background; whatever of them still runs when the test ends is killed, workers too."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for job in started:
        for pid in [*workers(job.pid), job.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            job.wait(timeout=30)


def start(
    command: list[str], env: dict[str, str], log: Path, jobs: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    with log.open("w") as output:
        job = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
    jobs.append(job)
    return job


def workers(launcher: int) -> list[int]:
    """The launcher's child processes (its ranks), from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == launcher:
                children.append(int(stat.parent.name))
    return children


def rank_of(pid: int) -> int:
    variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    (rank,) = [int(item.split(b"=", 1)[1]) for item in variables if item.startswith(b"RANK=")]
    return rank


def wait_for_step(job: subprocess.Popen[str], log: Path, step: int) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while max(map(int, STEP_LINE.findall(log.read_text())), default=0) < step:
        assert job.poll() is None, f"the job exited ({job.returncode}) before step {step}:\n{log.read_text()[-5000:]}"
        assert time.monotonic() < deadline, f"no step {step} in {WAIT_SECONDS} s:\n{log.read_text()[-5000:]}"
        time.sleep(0.05)


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_sigterm_checkpoints_mid_run_and_the_restart_redoes_at_most_one_step(
    tiny_base_model: Path, tmp_path: Path, jobs: list[subprocess.Popen[str]]
) -> None:
    env = environment(tmp_path, tiny_base_model, MODELPLANE_EPOCHS="200")
    log = tmp_path / "preempted.log"
    job = start(launcher_command(), env, log, jobs)
    wait_for_step(job, log, 3)
    # Kubernetes signals the container's main process (the launcher) alone; it passes SIGTERM on to its workers.
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=WAIT_SECONDS) == PREEMPTED_EXIT_CODE, log.read_text()[-5000:]
    output = log.read_text()
    last_trained = max(map(int, STEP_LINE.findall(output)))
    latest = CheckpointStore(env["MODELPLANE_CHECKPOINT_URI"], tmp_path / "scratch").latest()
    assert latest is not None and latest.marker.preempted, output[-5000:]
    saved = latest.marker.step
    # The checkpoint holds every step the ranks finished but the one in flight at most.
    assert saved >= 3 and last_trained - saved <= 1, output[-5000:]
    assert f"preempted at step {saved} (SIGTERM): checkpoint {tag_for(saved)} is committed" in output
    assert last_line(output).startswith("modelplane trainer: stopped by SIGTERM")

    resumed_log = tmp_path / "resumed.log"
    resumed = start(launcher_command("--max-steps", str(saved + 2)), env, resumed_log, jobs)
    assert resumed.wait(timeout=WAIT_SECONDS) == 0, resumed_log.read_text()[-5000:]
    resumed_output = resumed_log.read_text()
    assert f"resumed from {tag_for(saved)} at step {saved} (after preemption; 0 restarts)" in resumed_output
    assert min(map(int, STEP_LINE.findall(resumed_output))) == saved + 1


def test_a_stalled_rank_fails_the_job_within_the_collective_timeout(
    tiny_base_model: Path, tmp_path: Path, jobs: list[subprocess.Popen[str]]
) -> None:
    env = environment(
        tmp_path,
        tiny_base_model,
        MODELPLANE_EPOCHS="200",
        MODELPLANE_COLLECTIVE_TIMEOUT_SECONDS="5",
        # torchrun's wait for the stopped rank to honour SIGTERM before it sends SIGKILL.
        TORCH_ELASTIC_SHUTDOWN_TIMEOUT="2",
    )
    log = tmp_path / "stalled.log"
    job = start(launcher_command(), env, log, jobs)
    wait_for_step(job, log, 2)
    (stalled,) = [pid for pid in workers(job.pid) if rank_of(pid) == 1]
    os.kill(stalled, signal.SIGSTOP)
    # Bounded far below DeepSpeed's default of 30 minutes: the timeout is 5 s, torchrun's shutdown 2 s.
    assert job.wait(timeout=WAIT_SECONDS) == FAILED_EXIT_CODE, log.read_text()[-5000:]
    assert last_line(log.read_text()).startswith(
        "modelplane trainer: a collective failed: a peer rank stalled for over collective_timeout_seconds=5, or died"
    ), log.read_text()[-5000:]


def test_a_second_run_on_the_same_checkpoints_refuses_and_workers_die_with_their_launcher(
    tiny_base_model: Path, tmp_path: Path, jobs: list[subprocess.Popen[str]]
) -> None:
    env = environment(tmp_path, tiny_base_model, MODELPLANE_EPOCHS="200")
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start(launcher_command(), env, first_log, jobs)
    wait_for_step(first, first_log, 1)
    second = start(launcher_command(), env, second_log, jobs)
    assert second.wait(timeout=WAIT_SECONDS) == FAILED_EXIT_CODE, second_log.read_text()[-5000:]
    assert last_line(second_log.read_text()).startswith(
        f"modelplane trainer: checkpoint_uri='{env['MODELPLANE_CHECKPOINT_URI']}': another run is using it (host "
    )
    assert "step 1/" not in second_log.read_text()

    ranks = workers(first.pid)
    assert len(ranks) == WORLD_SIZE
    first.kill()  # the launcher alone, as an OOM kill would
    first.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in ranks) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in ranks if Path(f"/proc/{pid}").exists()]
    assert not survivors, "a worker outlived its launcher"


def test_bad_input_ends_the_output_with_one_line_and_no_traceback(
    tiny_base_model: Path, tmp_path: Path, jobs: list[subprocess.Popen[str]]
) -> None:
    env = environment(tmp_path, tiny_base_model)
    dataset = Path(env["MODELPLANE_DATASET_URI"])
    dataset.write_text(dataset.read_text() + '{"text": "Hooli shares jump", "label": "postive"}\n')
    log = tmp_path / "bad.log"
    job = start(launcher_command(), env, log, jobs)
    assert job.wait(timeout=WAIT_SECONDS) == FAILED_EXIT_CODE
    output = log.read_text()
    assert last_line(output) == (
        f"modelplane trainer: {dataset}:97: label 'postive' is not one of the job's labels "
        "(negative, neutral, positive); did you mean 'positive'?"
    ), output[-5000:]
    assert "Traceback" not in output
    assert not STEP_LINE.search(output)
