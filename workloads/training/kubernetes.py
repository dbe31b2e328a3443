"""How a TrainingJobSpec becomes Kubernetes objects (Kubeflow Trainer) and an IAM policy: plain functions.

The TrainJob runs the trainer's launcher (torchrun, ending with one line) with
`--module modelplane.workloads.training.trainer` on every node; the runtime's torch policy hands it its
rendezvous (PET_* variables), so the same spec runs on one node or many.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from modelplane.components.priorities import TrainingPriority, training_priority_class
from modelplane.terms.gpu_catalog import GpuInstanceType
from modelplane.terms.scheduling import (
    DO_NOT_DISRUPT_ANNOTATION,
    EFA_RESOURCE,
    GPU_PRESENT_LABEL,
    GPU_RESOURCE,
    NODE_RESERVED_MEMORY_FRACTION,
    NODE_RESERVED_VCPUS,
    POOL_LABEL,
    QUEUE_NAME_LABEL,
    WORKLOAD_PRIORITY_LABEL,
    gpu_toleration,
)
from modelplane.workloads.training.deepspeed_config import ds_config_for
from modelplane.workloads.training.spec import TrainingJobSpec
from modelplane.workloads.training.trainer.outcome import PREEMPTED_EXIT_CODE

TRAINER_API_VERSION = "trainer.kubeflow.org/v1alpha1"
RUNTIME_NAME = "modelplane-deepspeed"
TRAINER_CONTAINER = "node"
METRICS_PORT = 9400
METRICS_PORT_NAME = "metrics"
DEEPSPEED_CONFIG_DIR = "/etc/modelplane"
DEEPSPEED_CONFIG_FILE = "deepspeed.json"
JOB_LABEL = "modelplane.io/training-job"
RUNTIME_PATCH_MANAGER = "modelplane.io/training-job"
"""Who patches the runtime (Trainer 2.2's `runtimePatches` are keyed by manager)."""
NON_ROOT_UID = 1000
RUNTIME_PRIORITY = TrainingPriority.NORMAL
"""Every training pod's PriorityClass: Trainer 2.2's runtime patches cannot set a pod's priorityClassName, so a
job's own priority is Kueue's (its WorkloadPriorityClass), which admits and preempts whole jobs."""


DATASET_MOUNT_PATH = "/fsx"
"""Where a job's pods mount the S3-linked Lustre file system, when the platform has one."""
LAUNCHER_MODULE = "modelplane.workloads.training.trainer.launch"
TRAINER_MODULE = "modelplane.workloads.training.trainer"

CHECKPOINT_BYTES_PER_PARAMETER = 16
"""What a checkpoint holds per parameter with Adam: fp32 weights and two fp32 moments (12 bytes) and the 16-bit
copy of mixed precision (2), rounded up."""
CHECKPOINT_WRITE_BYTES_PER_SECOND = 100 * 1024**2
"""A conservative rate for a node writing the whole checkpoint (ZeRO splits it over the nodes) to local disk and
then to S3, or to the shared file system."""
STEP_ALLOWANCE_SECONDS = 60
"""The step in flight when SIGTERM comes finishes first, and the ranks agree to stop at its end."""
EXIT_ALLOWANCE_SECONDS = 30
"""After the checkpoint: the workers exit and the launcher reports."""
MIN_COLLECTIVE_TIMEOUT_SECONDS = 300
DEFAULT_TERMINATION_GRACE_SECONDS = 120
"""The runtime's grace period when no job asks for more: a small model's step, checkpoint and exit."""


def checkpoint_write_seconds(spec: TrainingJobSpec) -> int:
    """How long writing one checkpoint of the job's model may take."""
    return math.ceil(spec.base_model_parameters * CHECKPOINT_BYTES_PER_PARAMETER / CHECKPOINT_WRITE_BYTES_PER_SECOND)


def preemption_grace_seconds(spec: TrainingJobSpec) -> int:
    """From SIGTERM to SIGKILL, what a preempted pod needs: finish the step, write the checkpoint, exit."""
    return STEP_ALLOWANCE_SECONDS + checkpoint_write_seconds(spec) + EXIT_ALLOWANCE_SECONDS


def runtime_grace_seconds(specs: Iterable[TrainingJobSpec]) -> int:
    """The shared runtime's grace period (Trainer 2.2 lets no TrainJob set its own): the longest any job needs."""
    return max([DEFAULT_TERMINATION_GRACE_SECONDS, *(preemption_grace_seconds(spec) for spec in specs)])


def collective_timeout_for(spec: TrainingJobSpec) -> int:
    """The job's own, or twice a checkpoint's write plus a step: ranks wait at a barrier while their node's
    leader uploads, and at start while it downloads the base model (smaller than a checkpoint)."""
    if spec.collective_timeout_seconds is not None:
        return spec.collective_timeout_seconds
    return max(MIN_COLLECTIVE_TIMEOUT_SECONDS, 2 * checkpoint_write_seconds(spec) + STEP_ALLOWANCE_SECONDS)


@dataclass(frozen=True)
class DatasetVolume:
    """The platform's Lustre file system as a job sees it: a claim in its namespace, linked to a bucket prefix."""

    claim_name: str
    bucket_prefix: str
    """The prefix the file system imports (`datasets/`): objects under it appear at the same path inside it."""

    def holds(self, path: str) -> bool:
        return not path.startswith("s3://") and path.lstrip("/").startswith(self.bucket_prefix)


def dataset_location(spec: TrainingJobSpec, artifact_root: str, dataset_volume: DatasetVolume | None) -> str:
    """Where the trainer reads its dataset: from Lustre (at memory speed, no per-job S3 reads) when the dataset
    lies under the file system's prefix, else from the artifact store."""
    if dataset_volume is not None and dataset_volume.holds(spec.dataset):
        return f"{DATASET_MOUNT_PATH}/{spec.dataset.lstrip('/')}"
    return artifact_uri(spec.dataset, artifact_root)


def artifact_uri(path: str, artifact_root: str) -> str:
    """A spec path resolved against the artifact store root (`s3://bucket` or a local directory)."""
    if path.startswith("s3://"):
        return path
    return f"{artifact_root.rstrip('/')}/{path.lstrip('/')}"


def deepspeed_config_json(spec: TrainingJobSpec) -> str:
    return json.dumps(ds_config_for(spec.deepspeed, spec.world_size), indent=2, sort_keys=True)


def trainer_arguments(
    spec: TrainingJobSpec,
    artifact_root: str,
    deepspeed_config_path: str,
    metrics_port: int,
    dataset_volume: DatasetVolume | None = None,
) -> list[str]:
    """Arguments of `python -m modelplane.workloads.training.trainer` for this job (in the cloud and locally)."""
    arguments = [
        "--job-name", spec.name,
        "--dataset-uri", dataset_location(spec, artifact_root, dataset_volume),
        "--base-model", artifact_uri(spec.base_model, artifact_root),
        "--checkpoint-uri", artifact_uri(spec.checkpoints, artifact_root),
        "--model-uri", artifact_uri(spec.model_output, artifact_root),
        "--deepspeed-config", deepspeed_config_path,
        "--epochs", str(spec.epochs),
        "--checkpoint-every-steps", str(spec.checkpoint_every_steps),
        "--max-length", str(spec.max_length),
        "--metrics-port", str(metrics_port),
        "--collective-timeout-seconds", str(collective_timeout_for(spec)),
    ]  # fmt: skip
    if spec.max_steps is not None:
        arguments += ["--max-steps", str(spec.max_steps)]
    if spec.labels is not None:
        arguments += ["--labels", ",".join(spec.labels)]
    return arguments


def launcher_command() -> list[str]:
    """torchrun through modelplane's launcher, running the trainer module; the rendezvous comes as PET_*."""
    return ["python", "-m", LAUNCHER_MODULE, "--module", TRAINER_MODULE]


def node_resources(spec: TrainingJobSpec, instance: GpuInstanceType, efa: bool) -> dict[str, dict[str, str]]:
    """Requests equal limits (guaranteed QoS): the node's share for this job's GPUs, and its EFA devices."""
    share = spec.gpus_per_node / instance.gpus
    cpu = max(1, int((instance.vcpus - NODE_RESERVED_VCPUS) * share))
    memory_gib = max(1, int(instance.memory_gib * (1 - NODE_RESERVED_MEMORY_FRACTION) * share))
    resources = {"cpu": str(cpu), "memory": f"{memory_gib}Gi", GPU_RESOURCE: str(spec.gpus_per_node)}
    if efa:
        resources[EFA_RESOURCE] = str(instance.efa_interfaces)
    return {"requests": dict(resources), "limits": dict(resources)}


def trainer_environment(spec: TrainingJobSpec, efa: bool) -> list[dict[str, str]]:
    env = {
        "MODELPLANE_JOB_NAME": spec.name,
        "MODELPLANE_RESTART_BUDGET": str(spec.restart_budget),
        "MODELPLANE_MAX_RUN_MINUTES": str(spec.max_run_minutes),
        "HF_HOME": "/tmp/hf",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "NCCL_DEBUG": "WARN",
        # How long torchrun waits for its workers after passing SIGTERM on: the step and the checkpoint.
        "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(preemption_grace_seconds(spec) - EXIT_ALLOWANCE_SECONDS),
    }
    if efa:
        # aws-ofi-nccl over EFA: NCCL traffic bypasses the kernel's TCP stack.
        env.update({"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "FI_EFA_FORK_SAFE": "1"})
    env.update(spec.env)
    return [{"name": key, "value": value} for key, value in env.items()]


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_volumes(
    config_map_name: str, shm_gib: int, dataset_volume: DatasetVolume | None = None
) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        # NCCL and the data loaders share tensors through /dev/shm; the container default (64 MiB) is too small.
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gib}Gi"}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "deepspeed-config", "configMap": {"name": config_map_name}},
    ]
    if dataset_volume is not None:
        claim = {"claimName": dataset_volume.claim_name, "readOnly": True}
        volumes.append({"name": "datasets", "persistentVolumeClaim": claim})
    return volumes


def volume_mounts(dataset_volume: DatasetVolume | None = None) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "deepspeed-config", "mountPath": DEEPSPEED_CONFIG_DIR, "readOnly": True},
    ]
    if dataset_volume is not None:
        mounts.append({"name": "datasets", "mountPath": DATASET_MOUNT_PATH, "readOnly": True})
    return mounts


def job_labels(spec: TrainingJobSpec) -> dict[str, str]:
    return {JOB_LABEL: spec.name, "app.kubernetes.io/part-of": "modelplane", "app.kubernetes.io/component": "training"}


def queue_labels(spec: TrainingJobSpec, queue_name: str) -> dict[str, str]:
    """Kueue's labels on the TrainJob: the LocalQueue it waits in, and the priority it is admitted and preempted by."""
    return {QUEUE_NAME_LABEL: queue_name, WORKLOAD_PRIORITY_LABEL: training_priority_class(spec.priority)}


def train_job_manifest(
    spec: TrainingJobSpec,
    *,
    namespace: str,
    image: str,
    artifact_root: str,
    instance: GpuInstanceType,
    efa: bool,
    service_account: str,
    config_map_name: str,
    queue_name: str,
    dataset_volume: DatasetVolume | None = None,
) -> dict[str, Any]:
    """The Kubeflow Trainer TrainJob, queued in `queue_name` (a LocalQueue in `namespace`): Kueue admits it when
    every node's GPUs fit its team's quota; all nodes start together and restart together from the newest
    checkpoint."""
    config_path = f"{DEEPSPEED_CONFIG_DIR}/{DEEPSPEED_CONFIG_FILE}"
    shm_gib = max(1, instance.memory_gib // 8 * spec.gpus_per_node // instance.gpus)
    return {
        "apiVersion": TRAINER_API_VERSION,
        "kind": "TrainJob",
        "metadata": {
            "name": spec.name,
            "namespace": namespace,
            "labels": {**job_labels(spec), **queue_labels(spec, queue_name)},
            "annotations": {
                "modelplane.io/restart-budget": str(spec.restart_budget),
                "modelplane.io/max-run-minutes": str(spec.max_run_minutes),
            },
        },
        "spec": {
            "runtimeRef": {"name": RUNTIME_NAME, "kind": "ClusterTrainingRuntime", "apiGroup": "trainer.kubeflow.org"},
            "trainer": {
                "image": image,
                "command": launcher_command(),
                "args": trainer_arguments(spec, artifact_root, config_path, METRICS_PORT, dataset_volume),
                "env": trainer_environment(spec, efa),
                "numNodes": spec.nodes,
                "numProcPerNode": spec.gpus_per_node,
                "resourcesPerNode": node_resources(spec, instance, efa),
            },
            # The deadline covers the whole job, restarts included; the trainer checkpoints well before.
            "activeDeadlineSeconds": spec.max_run_minutes * 60,
            "runtimePatches": [
                {
                    "manager": RUNTIME_PATCH_MANAGER,
                    "trainingRuntimeSpec": {
                        "template": {
                            "spec": {
                                "replicatedJobs": [
                                    {
                                        "name": TRAINER_CONTAINER,
                                        "template": {
                                            "spec": {
                                                "template": {
                                                    "metadata": {"labels": job_labels(spec)},
                                                    "spec": node_pod_patch(
                                                        spec, service_account, config_map_name, shm_gib, dataset_volume
                                                    ),
                                                }
                                            }
                                        },
                                    }
                                ]
                            }
                        }
                    },
                }
            ],
        },
    }


def node_pod_patch(
    spec: TrainingJobSpec,
    service_account: str,
    config_map_name: str,
    shm_gib: int,
    dataset_volume: DatasetVolume | None = None,
) -> dict[str, Any]:
    """What each node's pod adds to the runtime's: identity, placement on the pool, volumes."""
    return {
        "serviceAccountName": service_account,
        "nodeSelector": {POOL_LABEL: spec.gpu_pool, GPU_PRESENT_LABEL: "true"},
        "tolerations": [gpu_toleration()],
        "volumes": pod_volumes(config_map_name, shm_gib, dataset_volume),
        "containers": [{"name": TRAINER_CONTAINER, "volumeMounts": volume_mounts(dataset_volume)}],
    }


def cluster_training_runtime_manifest(
    max_restarts: int = 10, termination_grace_seconds: int = DEFAULT_TERMINATION_GRACE_SECONDS
) -> dict[str, Any]:
    """The DeepSpeed-over-torchrun runtime every modelplane TrainJob uses.

    No pod group policy: Kueue admits all of a job's nodes together (and evicts them together when they are not
    all ready in time), and no runtime may ask for a gang scheduler the cluster does not run (Trainer 2.2 would
    never create the JobSet). A failed node restarts the whole group (up to `max_restarts`, the platform's
    ceiling; each job's own budget is enforced by its trainer, which counts restarts in its checkpoints).
    Karpenter never consolidates a node away under a running rank. A pod told to go (a spot reclaim, Kueue
    preempting the job) gets `termination_grace_seconds` to checkpoint: see `runtime_grace_seconds`. The group then
    exits PREEMPTED_EXIT_CODE; the Job fails at once on that code (its pod failure policy) and JobSet restarts the
    group without counting it against `max_restarts`, so spot reclaims never use up a job's failure budget.
    """
    return {
        "apiVersion": TRAINER_API_VERSION,
        "kind": "ClusterTrainingRuntime",
        "metadata": {"name": RUNTIME_NAME, "labels": {"trainer.kubeflow.org/framework": "deepspeed"}},
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
            "template": {
                "spec": {
                    "failurePolicy": {
                        "maxRestarts": max_restarts,
                        "rules": [
                            {
                                "name": "preempted",
                                "action": "RestartJobSetAndIgnoreMaxRestarts",
                                "onJobFailureReasons": ["PodFailurePolicy"],
                            }
                        ],
                    },
                    "replicatedJobs": [
                        {
                            "name": TRAINER_CONTAINER,
                            "template": {
                                "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                                "spec": {
                                    # A group restarts as a whole (JobSet), never one pod on its own.
                                    "backoffLimit": 0,
                                    "podFailurePolicy": {
                                        "rules": [
                                            {
                                                "action": "FailJob",
                                                "onExitCodes": {
                                                    "containerName": TRAINER_CONTAINER,
                                                    "operator": "In",
                                                    "values": [PREEMPTED_EXIT_CODE],
                                                },
                                            }
                                        ]
                                    },
                                    "template": {
                                        "metadata": {"annotations": {DO_NOT_DISRUPT_ANNOTATION: "true"}},
                                        "spec": {
                                            # A Job's pod failure policy requires it.
                                            "restartPolicy": "Never",
                                            "priorityClassName": training_priority_class(RUNTIME_PRIORITY),
                                            "terminationGracePeriodSeconds": termination_grace_seconds,
                                            "securityContext": {
                                                "runAsNonRoot": True,
                                                "runAsUser": NON_ROOT_UID,
                                                "fsGroup": NON_ROOT_UID,
                                                "seccompProfile": {"type": "RuntimeDefault"},
                                            },
                                            "containers": [
                                                {
                                                    "name": TRAINER_CONTAINER,
                                                    "image": "set-by-each-trainjob",
                                                    "ports": [
                                                        {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT}
                                                    ],
                                                    "securityContext": container_security_context(),
                                                }
                                            ],
                                        },
                                    },
                                },
                            },
                        }
                    ],
                }
            },
        },
    }


def s3_access_policy(
    bucket_arn: str, read_prefixes: list[str], write_prefixes: list[str], kms_key_arn: str
) -> dict[str, Any]:
    """Read the dataset and base model, write only the job's checkpoints and model: nothing else in the bucket."""

    def objects(prefixes: list[str]) -> list[str]:
        return [f"{bucket_arn}/{prefix.rstrip('/')}/*" for prefix in prefixes]

    listable = sorted(
        {p.rstrip("/") + "/*" for p in read_prefixes + write_prefixes}
        | {p.rstrip("/") for p in read_prefixes + write_prefixes}
    )
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadInputs",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": objects(read_prefixes + write_prefixes),
            },
            {
                "Sid": "WriteOutputs",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": objects(write_prefixes),
            },
            {
                "Sid": "ListOwnPrefixes",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket_arn],
                "Condition": {"StringLike": {"s3:prefix": listable}},
            },
            {
                "Sid": "UseBucketKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": [kms_key_arn],
            },
        ],
    }


def bucket_prefix(path: str) -> str:
    """The key prefix a spec path names inside the artifact bucket (a file's directory for a file)."""
    key = path.split("/", 3)[3] if path.startswith("s3://") else path
    if key.endswith("/"):
        return key.rstrip("/")
    last = key.rsplit("/", 1)[-1]
    return key.rsplit("/", 1)[0] if "." in last and "/" in key else key
