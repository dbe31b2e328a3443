"""Training jobs whoever wrote them (modelplane's TrainingJob, a raw TrainJob, Kubeflow's v1 jobs, a RayJob): where
each keeps its run deadline, and whether its trainer is told where to write checkpoints.

The checkpoint location is modelplane's trainer's contract: `--checkpoint-uri URI` (or `--checkpoint-uri=URI`) among
its arguments, or the `MODELPLANE_CHECKPOINT_URI` variable (see `workloads/training/trainer/config.py`). A job that
runs another trainer states it the same way.
"""

from __future__ import annotations

import shlex
from typing import Any

from modelplane.policies.rules.pod_specs import pod_templates, resource_kind
from modelplane.policies.rules.props import UNKNOWN, as_list, dig, is_unknown

KUBEFLOW_V1_JOB_KINDS = ("PyTorchJob", "TFJob", "MPIJob", "XGBoostJob", "PaddleJob", "JAXJob")
DEADLINE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("trainer.kubeflow.org", "TrainJob"): ("spec", "activeDeadlineSeconds"),
    ("ray.io", "RayJob"): ("spec", "activeDeadlineSeconds"),
    **{("kubeflow.org", kind): ("spec", "runPolicy", "activeDeadlineSeconds") for kind in KUBEFLOW_V1_JOB_KINDS},
}
"""Every training job kind this pack knows, and where it keeps its run deadline."""
CHECKPOINT_ARGUMENT = "--checkpoint-uri"
CHECKPOINT_VARIABLE = "MODELPLANE_CHECKPOINT_URI"


def deadline_path(resource_type: str) -> tuple[str, ...] | None:
    """Where a training job keeps its deadline; None for anything else (patches included: they need not set it)."""
    kind = resource_kind(resource_type)
    if kind is None or kind.patch:
        return None
    return DEADLINE_PATHS.get((kind.group, kind.kind))


def deadline_field(resource_type: str) -> str:
    return ".".join(deadline_path(resource_type) or ("spec", "activeDeadlineSeconds"))


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def has_deadline(resource_type: str, props: dict[str, Any]) -> bool | None:
    """Whether the job carries a positive deadline; None while it is not yet known."""
    path = deadline_path(resource_type)
    if path is None:
        return None
    seconds = dig(props, *path)
    return None if is_unknown(seconds) else _positive(seconds)


def _arguments_name_checkpoints(arguments: list[Any]) -> bool | None:
    for index, argument in enumerate(arguments):
        if argument == CHECKPOINT_ARGUMENT and index + 1 < len(arguments):
            uri = arguments[index + 1]
            return None if is_unknown(uri) else bool(isinstance(uri, str) and uri.strip())
        if isinstance(argument, str) and argument.startswith(f"{CHECKPOINT_ARGUMENT}="):
            return bool(argument.split("=", 1)[1].strip())
    return False


def _environment_names_checkpoints(variables: list[Any]) -> bool | None:
    for variable in variables:
        if dig(variable, "name") != CHECKPOINT_VARIABLE:
            continue
        value = dig(variable, "value")
        if is_unknown(value):
            return None
        return bool(isinstance(value, str) and value.strip()) or dig(variable, "valueFrom") is not None
    return False


def _command_line(command: Any, arguments: Any) -> Any:
    """A process's command and arguments as one list; UNKNOWN while either is not yet known."""
    if is_unknown(command) or is_unknown(arguments):
        return UNKNOWN
    return [*as_list(command), *as_list(arguments)]


def _invocations(resource_type: str, props: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(command line, environment) of each process the job starts: trainer, containers, a RayJob's entrypoint."""
    invocations: list[tuple[Any, Any]] = []
    trainer = dig(props, "spec", "trainer")
    if trainer is not None:
        invocations.append((_command_line(dig(trainer, "command"), dig(trainer, "args")), dig(trainer, "env")))
    entrypoint = dig(props, "spec", "entrypoint")
    if isinstance(entrypoint, str) or is_unknown(entrypoint):
        invocations.append((UNKNOWN if is_unknown(entrypoint) else shlex.split(entrypoint), None))
    invocations += [
        (_command_line(container.spec.get("command"), container.spec.get("args")), container.spec.get("env"))
        for template in pod_templates(resource_type, props)
        for container in template.containers
    ]
    return invocations


def has_checkpoint_uri(resource_type: str, props: dict[str, Any]) -> bool | None:
    """Whether some process of the job is told where to write checkpoints; None while that is not yet known."""
    answers = []
    for arguments, environment in _invocations(resource_type, props):
        answers.append(None if is_unknown(arguments) else _arguments_name_checkpoints(as_list(arguments)))
        answers.append(None if is_unknown(environment) else _environment_names_checkpoints(as_list(environment)))
    if True in answers:
        return True
    return None if None in answers else False
