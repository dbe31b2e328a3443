"""`python -m modelplane.workloads.training.trainer`: fine-tune, checkpoint and export a text classifier
(one worker; `python -m modelplane.workloads.training.trainer.launch` runs it on every rank)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from modelplane.terms.log_lines import LogFormat, configure_logging
from modelplane.workloads.storage import StorageError
from modelplane.workloads.training.trainer import distributed
from modelplane.workloads.training.trainer.checkpoints import NothingStaged
from modelplane.workloads.training.trainer.config import TrainerConfig
from modelplane.workloads.training.trainer.lease import LeaseHeld, LeaseLost
from modelplane.workloads.training.trainer.outcome import (
    FAILED_EXIT_CODE,
    PREEMPTED_EXIT_CODE,
    Preempted,
    record_for_launcher,
)
from modelplane.workloads.training.trainer.preflight import PreflightFailed
from modelplane.workloads.training.trainer.train import (
    DeadlineExceeded,
    NonFiniteLossError,
    RestartBudgetExhausted,
    train,
)

REPORTED_ERRORS = (
    PreflightFailed,
    ValueError,
    StorageError,
    LeaseHeld,
    LeaseLost,
    NothingStaged,
    RestartBudgetExhausted,
    DeadlineExceeded,
    NonFiniteLossError,
)
"""Failures whose message says all there is to say: logged as that one line, without a traceback."""


def route_library_output(log_format: str) -> None:
    """transformers logs through the root's handler, in the job's format; with JSON, without its progress bars
    (each redraws one line in place, which would reach the log shipper as one long line that is not JSON)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_default_handler()
    transformers_logging.enable_propagation()
    if log_format == LogFormat.JSON:
        transformers_logging.disable_progress_bar()


def collective_failure(error: BaseException, config: TrainerConfig) -> str | None:
    """What a failed collective means, in one line, or None when `error` is something else.

    gloo and NCCL report a peer that stalled past the timeout, or died, as a RuntimeError of their own.
    """
    import torch.distributed as dist

    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    backend_words = ("gloo", "nccl", "timed out", "connection closed", "connection reset", "watchdog")
    if not isinstance(error, dist.DistError) and not any(word in text.lower() for word in backend_words):
        return None
    return (
        f"a collective failed: a peer rank stalled for over collective_timeout_seconds="
        f"{config.collective_timeout_seconds}, or died ({text})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    distributed.die_with_launcher()
    try:
        config = TrainerConfig.from_args(argv)
    except ValueError as error:
        record_for_launcher(str(error))
        sys.exit(f"python -m modelplane.workloads.training.trainer: {error}")
    rank = os.environ.get("RANK", "0")
    # Rank 0 speaks for the job; the other ranks report only problems. Every line names the job and its rank.
    configure_logging(
        logging.INFO if rank == "0" else logging.WARNING,
        config.log_format,
        {"job": config.job_name, "rank": int(rank) if rank.isdigit() else rank},
    )
    route_library_output(config.log_format)
    log = logging.getLogger(__name__)
    try:
        result = train(config)
    except Preempted as stopped:
        log.warning("%s", stopped)
        record_for_launcher(str(stopped))
        sys.exit(PREEMPTED_EXIT_CODE)
    except REPORTED_ERRORS as error:
        log.error("%s", error)
        record_for_launcher(str(error))
        sys.exit(FAILED_EXIT_CODE)
    except Exception as error:
        # The traceback as one line of the job's log format, with the rank that died, so the log shipper
        # keeps it whole and `modelplane logs` shows it; the launcher ends the output with the short reason.
        reason = collective_failure(error, config)
        if reason is not None:
            log.error("%s", reason)
        else:
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            log.exception("training failed")
        record_for_launcher(reason)
        sys.exit(FAILED_EXIT_CODE)
    log.info("done at step %d after %d restarts", result.step, result.restarts, extra={"step": result.step})


if __name__ == "__main__":
    main()
