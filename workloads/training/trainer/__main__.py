"""`python -m modelplane.workloads.training.trainer`: fine-tune, checkpoint and export a text classifier
(run it under torchrun)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from modelplane.workloads.training.trainer.config import TrainerConfig
from modelplane.workloads.training.trainer.train import train


def main(argv: Sequence[str] | None = None) -> None:
    try:
        config = TrainerConfig.from_args(argv)
    except ValueError as error:
        sys.exit(f"python -m modelplane.workloads.training.trainer: {error}")
    # Rank 0 speaks for the job; the other ranks report only problems.
    is_main = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(
        level=logging.INFO if is_main else logging.WARNING,
        format="%(asctime)s %(levelname)s [rank " + os.environ.get("RANK", "0") + "] %(name)s: %(message)s",
    )
    result = train(config)
    logging.getLogger(__name__).info("done at step %d after %d restarts", result.step, result.restarts)


if __name__ == "__main__":
    main()
