"""How a worker tells its launcher, and the launcher Kubernetes, how the run ended: exit codes and one line.

A failing worker writes its one-line reason to the error file torchrun gives it (TORCHELASTIC_ERROR_FILE, in the
format torchrun reads back); the launcher ends the job's output with that line and exits with the worker's code.
"""

from __future__ import annotations

import json
import os
import time

FAILED_EXIT_CODE = 1
PREEMPTED_EXIT_CODE = 75
"""EX_TEMPFAIL: the run stopped because it was told to (SIGTERM), wrote a checkpoint, and wants to be resumed."""
ERROR_FILE_VARIABLE = "TORCHELASTIC_ERROR_FILE"
LAUNCHER_PID_VARIABLE = "MODELPLANE_LAUNCHER_PID"
"""Set by the launcher for its workers: they ask to die with it (see distributed.die_with_launcher)."""


class Preempted(Exception):
    """The group stopped on SIGTERM after checkpointing; the message says where it resumes."""


def record_for_launcher(message: str) -> None:
    """Leave `message` where torchrun picks up a worker's failure (nothing when not run by torchrun)."""
    path = os.environ.get(ERROR_FILE_VARIABLE)
    if not path:
        return
    with open(path, "w") as handle:
        json.dump({"message": message, "timestamp": int(time.time())}, handle)
