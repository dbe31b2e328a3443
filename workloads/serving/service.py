"""`InferenceService`: one typed resource that serves a trained model on the platform."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from modelplane.components.alerting.rules import DEFAULT_RUNBOOK_BASE_URL, with_runbook_base
from modelplane.components.iam import InlinePolicy, pod_identity
from modelplane.components.prometheus_rule import monitor, prometheus_rule
from modelplane.terms.gpu_catalog import gpu_instance_type
from modelplane.terms.scheduling import WORKLOAD_NAMESPACE
from modelplane.workloads.serving.alerts import inference_rules
from modelplane.workloads.serving.kubernetes import (
    CANARY,
    STABLE,
    autoscaler_manifest,
    deployment_manifest,
    disruption_budget_manifest,
    model_read_policy,
    scrape_spec,
    service_labels,
    service_manifest,
)
from modelplane.workloads.serving.spec import Accelerator, InferenceServiceSpec, fit_problems, spec_problems
from modelplane.workloads.spec_fields import repository_of
from modelplane.workloads.training.job import image_reference


class InferenceServiceArgs(TypedDict):
    spec: Mapping[str, Any]
    """What the ML team declared, as plain data (the fields of InferenceServiceSpec); validated here."""
    cluster_name: pulumi.Input[str]
    """The EKS cluster (for the service's pod identity)."""
    image_repository_url: pulumi.Input[str]
    """URL of the ECR repository named in `spec.image`; the spec's tag or digest is appended."""
    image: NotRequired[pulumi.Input[str]]
    """The exact image of the stable track, e.g. a build's `repository@sha256:...`; default the repository URL with
    the spec's tag or digest. The canary always runs its own `canary.image`."""
    canary_image_repository_url: NotRequired[pulumi.Input[str]]
    """URL of the repository `spec.canary.image` names, when that is another repository than `spec.image`'s."""
    artifact_bucket: pulumi.Input[str]
    """The platform's artifact bucket: model paths resolve under it."""
    artifact_bucket_arn: pulumi.Input[str]
    """Its ARN, for the service's read-only, model-scoped access policy."""
    artifact_kms_key_arn: pulumi.Input[str]
    """The bucket's KMS key, which the server needs to read the model."""
    instance_type: NotRequired[str]
    """The GPU pool's instance type: required with accelerator gpu (checks the replica fits), absent with cpu."""
    namespace: NotRequired[str]
    """Namespace of the service's objects; default WORKLOAD_NAMESPACE ("ml")."""
    runbook_base_url: NotRequired[str]
    """Where the alerts' runbook pages are published; default the repository's docs/runbooks."""


def _problems(spec: InferenceServiceSpec, args: InferenceServiceArgs) -> list[str]:
    """The spec's own rules, and one replica's fit on the pool's instance type."""
    instance_type = args.get("instance_type")
    problems = [f"spec.{problem}" for problem in spec_problems(spec)]
    if spec.accelerator is Accelerator.GPU and instance_type is None:
        problems.append(f"instance_type=None: accelerator gpu needs the instance type of pool {spec.gpu_pool!r}")
    if spec.accelerator is Accelerator.CPU and instance_type is not None:
        problems.append(f"instance_type={instance_type!r}: a CPU service runs on the system nodes; remove it")
    if spec.accelerator is Accelerator.GPU and instance_type is not None:
        problems.extend(f"spec.{problem}" for problem in fit_problems(spec, gpu_instance_type(instance_type)))
    canary_image = spec.canary_image
    other_repository = canary_image is not None and repository_of(canary_image) != repository_of(spec.image)
    if other_repository and "canary_image_repository_url" not in args:
        problems.append(
            f"canary_image_repository_url: required, as spec.canary.image={canary_image!r} names another "
            f"repository than spec.image={spec.image!r}"
        )
    return problems


def _body(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `metadata` and `spec`, as keyword arguments of the typed resource."""
    return {"metadata": manifest["metadata"], "spec": manifest["spec"]}


class InferenceService(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    """The Kubernetes Service's name: clients call http://<name>.<namespace>.svc/v2/models/<model>/infer."""
    role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: InferenceServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelplane:workloads:InferenceService", name, {}, opts)
        spec = InferenceServiceSpec.model_validate(args["spec"])
        namespace = args.get("namespace", WORKLOAD_NAMESPACE)
        problems = _problems(spec, args)
        if problems:
            raise ValueError(f"InferenceService {name}: " + "; ".join(problems))
        child = pulumi.ResourceOptions(parent=self)
        labels = service_labels(spec)
        account_name = f"{spec.name}-inference"

        models = [spec.model] + ([spec.canary_model] if spec.canary_model else [])
        identity = pod_identity(
            name,
            parent=self,
            cluster_name=args["cluster_name"],
            namespace=namespace,
            service_account=account_name,
            policy=InlinePolicy(
                "model-read",
                pulumi.Output.all(args["artifact_bucket_arn"], args["artifact_kms_key_arn"]).apply(
                    lambda arns: json.dumps(model_read_policy(arns[0], models, arns[1]))
                ),
            ),
            service_account_labels=labels,
        )

        tracks = [(STABLE, spec.image)] + ([(CANARY, spec.canary_image)] if spec.canary_image else [])
        deployments = []
        for track, image in tracks:
            repository_url = (
                args["image_repository_url"]
                if repository_of(image) == repository_of(spec.image)
                else args["canary_image_repository_url"]
            )

            reference: pulumi.Output[str] = pulumi.Output.from_input(repository_url).apply(
                functools.partial(image_reference, spec_image=image)
            )
            if track == STABLE and "image" in args:
                reference = pulumi.Output.from_input(args["image"])

            def render(values: list[Any], track: str = track) -> dict[str, Any]:
                return deployment_manifest(
                    spec,
                    track,
                    namespace=namespace,
                    image=values[0],
                    artifact_root=f"s3://{values[1]}",
                    service_account=account_name,
                )

            manifest = pulumi.Output.all(reference, args["artifact_bucket"]).apply(render)
            deployments.append(
                k8s.apps.v1.Deployment(
                    f"{name}-deployment" if track == STABLE else f"{name}-{track}-deployment",
                    metadata=manifest["metadata"],
                    spec=manifest["spec"],
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        depends_on=identity.pod_dependencies,
                        # The autoscaler owns the stable track's replica count once it exists.
                        ignore_changes=["spec.replicas"] if track == STABLE else None,
                    ),
                )
            )
        k8s.core.v1.Service(f"{name}-service", **_body(service_manifest(spec, namespace=namespace)), opts=child)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-autoscaler",
            **_body(autoscaler_manifest(spec, namespace=namespace)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployments[0]]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-disruption-budget", **_body(disruption_budget_manifest(spec, namespace=namespace)), opts=child
        )
        monitor(
            f"{name}-metrics",
            kind="ServiceMonitor",
            name=spec.name,
            namespace=namespace,
            spec=scrape_spec(spec),
            labels=labels,
            opts=child,
        )
        objectives = spec.inference_objectives()
        runbook_base = args.get("runbook_base_url", DEFAULT_RUNBOOK_BASE_URL)
        prometheus_rule(
            f"{name}-alerts",
            name=f"{spec.name}-inference",
            namespace=namespace,
            groups=with_runbook_base(inference_rules(spec.name, objectives), runbook_base),
            labels=labels,
            opts=child,
        )
        if spec.canary is not None:
            prometheus_rule(
                f"{name}-canary-alerts",
                name=f"{spec.name}-inference-canary",
                namespace=namespace,
                groups=with_runbook_base(inference_rules(spec.name, objectives, track=CANARY), runbook_base),
                labels=labels,
                opts=child,
            )
        self.service_name = pulumi.Output.from_input(spec.name)
        self.role_arn = identity.role.arn
        self.register_outputs({"service_name": self.service_name, "role_arn": self.role_arn})
