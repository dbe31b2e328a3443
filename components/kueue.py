"""Kueue on the cluster: its controller (pinned Helm chart), a GPU queue per team and the job priorities.

Kueue admits a TrainJob only when all its ranks' GPUs fit its team's quota (gang admission, with no gang
scheduler), borrows idle quota across teams and preempts by WorkloadPriorityClass. The team namespaces are
created elsewhere: pass `depends_on` them in `opts`, with the cluster's Kubernetes provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.metadata import version
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import yaml

from modelplane.components.custom_object import custom_object
from modelplane.components.gpu_queues import (
    LOCAL_QUEUE_NAME,
    GpuFlavor,
    TeamQueue,
    cluster_queue_manifest,
    kueue_manager_config,
    local_queue_manifest,
    queue_problems,
    resource_flavor_manifest,
)
from modelplane.components.priorities import workload_priority_class_manifests
from modelplane.terms.scheduling import POOL_LABEL, SYSTEM_POOL_NAME

COMPONENT_TYPE = "modelplane:scheduling:Kueue"
CHART = "oci://registry.k8s.io/kueue/charts/kueue"
CHART_VERSION = "0.19.2"
"""Pinned with the CRD schemas the plan validates against (modelplane/plan/crd_schemas, KUEUE_VERSION)."""
NAMESPACE = "kueue-system"
RELEASE_NAME = "kueue"
"""The chart names its objects after the release: `kueue-controller-manager`, `kueue-webhook-service`."""


class KueueTeamArgs(TypedDict):
    name: str
    """DNS label; the team's ClusterQueue is `team-<name>`."""
    namespace: str
    """The team's namespace (created elsewhere): its LocalQueue goes there, and only its jobs use its quota."""
    gpu_quota: Mapping[str, int]
    """GPUs guaranteed to the team per pool name; pools not listed: 0."""
    can_borrow: NotRequired[bool]
    """Run on GPUs other teams leave idle, given back by preemption when they want them; default True."""


class KueuePoolArgs(TypedDict):
    pool: str
    """A GPU pool's name, as its nodes carry it in the `modelplane.io/pool` label."""
    gpus_at_max: int
    """The pool's GPUs at its max size: the teams' quotas of it add up to at most this."""


class KueueArgs(TypedDict):
    teams: Sequence[KueueTeamArgs]
    """The teams sharing the GPUs, each with its quota."""
    pools: Sequence[KueuePoolArgs]
    """The GPU pools: one Kueue flavor each."""
    node_selector: NotRequired[Mapping[str, str]]
    """Where the controller runs; default the system pool's nodes."""


def kueue_chart_values(node_selector: Mapping[str, str]) -> dict[str, Any]:
    """Helm values: the controller on `node_selector`'s nodes, configured by `kueue_manager_config`."""
    return {
        "controllerManager": {"nodeSelector": dict(node_selector)},
        "managerConfig": {"controllerManagerConfigYaml": yaml.safe_dump(kueue_manager_config(), sort_keys=False)},
    }


class WorkloadPriorityClass(pulumi.CustomResource):
    """Kueue's WorkloadPriorityClass from its rendered manifest (see components/priorities.py).

    Its `value` and `description` sit at the top level, beside `metadata`, where pulumi_kubernetes' Python
    CustomResource (which carries only `spec`) cannot put them; the provider applies any fields of a CRD type.
    """

    def __init__(self, resource_name: str, manifest: Mapping[str, Any], opts: pulumi.ResourceOptions):
        if manifest.get("kind") != "WorkloadPriorityClass":
            raise ValueError(f"manifest kind={manifest.get('kind')!r}: expected a WorkloadPriorityClass")
        super().__init__(
            f"kubernetes:{manifest['apiVersion']}:WorkloadPriorityClass",
            resource_name,
            dict(manifest),
            # As pulumi_kubernetes' own resources do: the default provider is the SDK's version.
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(version=version("pulumi_kubernetes"))),
        )


class Kueue(pulumi.ComponentResource):
    """Kueue's pinned chart, then its objects: a flavor per GPU pool, a ClusterQueue and a LocalQueue per team,
    and the WorkloadPriorityClasses. TrainJobs go in with `depends_on` this component: a job created before
    Kueue's webhook runs would start at once, outside every quota."""

    local_queue_names: dict[str, str]
    """Per team name, the LocalQueue its jobs name (in the team's namespace)."""
    namespace: pulumi.Output[str]
    """Kueue's own namespace, once the release is deployed."""

    def __init__(self, name: str, args: KueueArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        teams = [
            TeamQueue(
                name=team["name"],
                namespace=team["namespace"],
                gpu_quota=dict(team["gpu_quota"]),
                can_borrow=team.get("can_borrow", True),
            )
            for team in args["teams"]
        ]
        flavors = [GpuFlavor(pool=pool["pool"], gpus_at_max=pool["gpus_at_max"]) for pool in args["pools"]]
        problems = queue_problems(teams, flavors)
        if problems:
            raise ValueError(f"Kueue {name}: " + "; ".join(problems))
        node_selector = args.get("node_selector", {POOL_LABEL: SYSTEM_POOL_NAME})

        release = k8s.helm.v3.Release(
            f"{name}-controller",
            name=RELEASE_NAME,
            chart=CHART,
            version=CHART_VERSION,
            namespace=NAMESPACE,
            create_namespace=True,
            # A failed upgrade rolls back; the release is done only when the controller and its webhook serve.
            atomic=True,
            values=kueue_chart_values(node_selector),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The release brings the CRDs and the webhooks that default and check these objects.
        after_release = pulumi.ResourceOptions(parent=self, depends_on=[release])
        resource_flavors = [
            custom_object(f"{name}-flavor-{flavor.pool}", resource_flavor_manifest(flavor.pool), after_release)
            for flavor in flavors
        ]
        for team in teams:
            cluster_queue = custom_object(
                f"{name}-{team.cluster_queue}",
                cluster_queue_manifest(team, flavors),
                pulumi.ResourceOptions(parent=self, depends_on=[release, *resource_flavors]),
            )
            custom_object(
                f"{name}-{team.name}-local-queue",
                local_queue_manifest(team),
                pulumi.ResourceOptions(parent=self, depends_on=[release, cluster_queue]),
            )
        for manifest in workload_priority_class_manifests():
            level = manifest["metadata"]["name"]
            WorkloadPriorityClass(f"{name}-{level.removeprefix('modelplane-')}-priority", manifest, after_release)

        self.local_queue_names = {team.name: LOCAL_QUEUE_NAME for team in teams}
        self.namespace = release.id.apply(lambda _: NAMESPACE)
        self.register_outputs({"local_queue_names": self.local_queue_names, "namespace": self.namespace})
