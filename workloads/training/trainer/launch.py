"""torchrun that ends its output with one line: the same options and PET_* variables, e.g.

    python -m modelplane.workloads.training.trainer.launch --nproc_per_node 2 \
        --module modelplane.workloads.training.trainer [trainer options]

torchrun ends a failed job with its own traceback and a table, the workers' reason buried above them. This
launcher ends it with the reason the failed worker recorded (see outcome.py) and exits with the worker's code:
75 when the group stopped on SIGTERM after checkpointing (resume it), 1 when it failed. Its workers die with it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelplane.workloads.training.trainer.outcome import FAILED_EXIT_CODE, LAUNCHER_PID_VARIABLE, PREEMPTED_EXIT_CODE

if TYPE_CHECKING:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

PREFIX = "modelplane trainer"


def main(argv: Sequence[str] | None = None) -> None:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    os.environ[LAUNCHER_PID_VARIABLE] = str(os.getpid())
    args = parse_args(list(argv) if argv is not None else None)
    try:
        run(args)
    except ChildFailedError as failed:
        code, reason = worst_failure(failed)
        print(f"{PREFIX}: {reason}", file=sys.stderr, flush=True)
        sys.exit(code)
    except SignalException as stopped:
        # torchrun passed the signal on and waited for the workers: on SIGTERM they checkpoint after their step.
        print(
            f"{PREFIX}: stopped by {stopped.sigval.name}; the workers checkpoint before they exit, so the restart "
            "resumes from the newest complete checkpoint",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(PREEMPTED_EXIT_CODE)


def worst_failure(failed: ChildFailedError) -> tuple[int, str]:
    """The exit code and reason to report: a worker's recorded reason before a bare exit code or signal (the
    ranks torchrun stopped because another failed), and a failure before a preemption."""
    failures = sorted(failed.failures.values(), key=lambda failure: failure.local_rank)
    recorded = [failure for failure in failures if failure.error_file_data.get("message")]
    chosen = recorded or failures
    failure = next((f for f in chosen if f.exitcode != PREEMPTED_EXIT_CODE), chosen[0])
    reason = failure.message if recorded else f"rank {failure.local_rank}: {failure.message} (exit {failure.exitcode})"
    code = failure.exitcode if failure.exitcode in (PREEMPTED_EXIT_CODE, FAILED_EXIT_CODE) else FAILED_EXIT_CODE
    return code, reason


if __name__ == "__main__":
    main()
