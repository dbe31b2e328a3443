"""`TrainingJob`: one typed resource that runs a DeepSpeed training job on the platform."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from modelplane.components.alerting.rules import DEFAULT_RUNBOOK_BASE_URL, with_runbook_base
from modelplane.components.gpu_queues import LOCAL_QUEUE_NAME
from modelplane.components.iam import InlinePolicy, pod_identity
from modelplane.components.prometheus_rule import ScrapeEndpoint, pod_monitor, prometheus_rule
from modelplane.terms.gpu_catalog import gpu_instance_type
from modelplane.terms.names import check_kubernetes_name
from modelplane.terms.scheduling import WORKLOAD_NAMESPACE
from modelplane.workloads.training.alerts import training_rules
from modelplane.workloads.training.kubernetes import (
    DEEPSPEED_CONFIG_FILE,
    METRICS_PORT_NAME,
    TRAINER_API_VERSION,
    DatasetVolume,
    bucket_prefix,
    deepspeed_config_json,
    job_labels,
    s3_access_policy,
    train_job_manifest,
)
from modelplane.workloads.training.spec import TrainingJobSpec


class TrainingJobArgs(TypedDict):
    spec: Mapping[str, Any]
    """What the ML team declared, as plain data (the fields of TrainingJobSpec); validated here."""
    cluster_name: pulumi.Input[str]
    """The EKS cluster (for the job's pod identity)."""
    image_repository_url: pulumi.Input[str]
    """URL of the ECR repository named in `spec.image`; the spec's tag or digest is appended."""
    image: NotRequired[pulumi.Input[str]]
    """The exact image to run, e.g. a build's `repository@sha256:...`; default the repository URL with the spec's
    tag or digest."""
    artifact_bucket: pulumi.Input[str]
    """The platform's artifact bucket: spec paths resolve under it."""
    artifact_bucket_arn: pulumi.Input[str]
    """Its ARN, for the job's prefix-scoped access policy."""
    artifact_kms_key_arn: pulumi.Input[str]
    """The bucket's KMS key, which the job needs to read and write objects."""
    instance_type: str
    """The GPU pool's instance type: sizes requests and EFA devices."""
    efa: NotRequired[bool]
    """The pool has EFA interfaces: request them and configure NCCL for them; default False."""
    namespace: NotRequired[str]
    """Namespace of the job's objects; default WORKLOAD_NAMESPACE ("ml")."""
    runbook_base_url: NotRequired[str]
    """Where the alerts' runbook pages are published; default the repository's docs/runbooks."""
    dataset_claim: NotRequired[str]
    """A claim in `namespace` on the platform's S3-linked Lustre file system; with `dataset_prefix`, a dataset under
    that prefix is read from the file system instead of S3."""
    dataset_prefix: NotRequired[str]
    """The bucket prefix the file system imports, e.g. "datasets/"; required with `dataset_claim`."""
    queue_name: NotRequired[str]
    """The Kueue LocalQueue in `namespace` the job waits in; default LOCAL_QUEUE_NAME ("gpu"), the one the Kueue
    component gives every team. Create the job with `depends_on` Kueue and the PriorityClasses."""


def image_reference(repository_url: str, spec_image: str) -> str:
    """`trainer:1.2.0` in the platform's registry: the repository's URL with the spec's tag or digest."""
    separator = "@" if "@" in spec_image else ":"
    return f"{repository_url}{separator}{spec_image.split(separator, 1)[1]}"


def _dataset_volume(args: TrainingJobArgs) -> DatasetVolume | None:
    claim, prefix = args.get("dataset_claim"), args.get("dataset_prefix")
    if claim is None and prefix is None:
        return None
    if not claim or not prefix:
        raise ValueError(f"dataset_claim={claim!r}, dataset_prefix={prefix!r}: give both, or neither")
    return DatasetVolume(claim, prefix)


class TrainingJob(pulumi.ComponentResource):
    train_job_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: TrainingJobArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:workloads:TrainingJob", name, {}, opts)
        spec = TrainingJobSpec.model_validate(args["spec"])
        namespace = args.get("namespace", WORKLOAD_NAMESPACE)
        efa = args.get("efa", False)
        queue_name = check_kubernetes_name("queue_name", args.get("queue_name", LOCAL_QUEUE_NAME))
        instance = gpu_instance_type(args["instance_type"])
        dataset_volume = _dataset_volume(args)
        if spec.gpus_per_node > instance.gpus:
            raise ValueError(f"spec.gpus_per_node={spec.gpus_per_node}: {instance.name} has {instance.gpus} GPUs")
        child = pulumi.ResourceOptions(parent=self)

        reads = [bucket_prefix(spec.dataset), bucket_prefix(spec.base_model)]
        writes = [bucket_prefix(spec.checkpoints), bucket_prefix(spec.model_output)]
        identity = pod_identity(
            name,
            parent=self,
            cluster_name=args["cluster_name"],
            namespace=namespace,
            service_account=spec.name,
            policy=InlinePolicy(
                "artifacts",
                pulumi.Output.all(args["artifact_bucket_arn"], args["artifact_kms_key_arn"]).apply(
                    lambda arns: json.dumps(s3_access_policy(arns[0], reads, writes, arns[1]))
                ),
            ),
            service_account_labels=job_labels(spec),
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-deepspeed",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{spec.name}-deepspeed", namespace=namespace, labels=job_labels(spec)
            ),
            data={DEEPSPEED_CONFIG_FILE: deepspeed_config_json(spec)},
            opts=child,
        )
        image = args.get("image") or pulumi.Output.from_input(args["image_repository_url"]).apply(
            lambda url: image_reference(url, spec.image)
        )
        manifest = pulumi.Output.all(image, args["artifact_bucket"]).apply(
            lambda values: train_job_manifest(
                spec,
                namespace=namespace,
                image=values[0],
                artifact_root=f"s3://{values[1]}",
                instance=instance,
                efa=efa,
                service_account=spec.name,
                config_map_name=f"{spec.name}-deepspeed",
                queue_name=queue_name,
                dataset_volume=dataset_volume,
            )
        )
        train_job = k8s.apiextensions.CustomResource(
            f"{name}-trainjob",
            api_version=TRAINER_API_VERSION,
            kind="TrainJob",
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*identity.pod_dependencies, config_map]),
        )
        pod_monitor(
            f"{name}-metrics",
            name=f"{spec.name}-trainer",
            namespace=namespace,
            # JobSet labels every pod of the TrainJob with its name.
            match_labels={"jobset.sigs.k8s.io/jobset-name": spec.name},
            endpoints=[ScrapeEndpoint(port=METRICS_PORT_NAME, interval="30s")],
            opts=child,
        )
        prometheus_rule(
            f"{name}-alerts",
            name=f"{spec.name}-training",
            namespace=namespace,
            groups=with_runbook_base(
                [training_rules(spec.name, spec.alerts.thresholds(spec.restart_budget))],
                args.get("runbook_base_url", DEFAULT_RUNBOOK_BASE_URL),
            ),
            opts=child,
        )
        self.train_job_name = pulumi.Output.from_input(spec.name)
        self.role_arn = identity.role.arn
        self.register_outputs({"train_job_name": self.train_job_name, "role_arn": self.role_arn, "id": train_job.id})
