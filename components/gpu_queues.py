"""Team GPU quotas as Kueue objects: plain functions over plain data, tested without Pulumi.

One ResourceFlavor per GPU pool; per team a ClusterQueue (`team-<name>`) holding its nominal GPUs of each pool,
all in one cohort so a team may borrow what the others leave idle (and get its own back by preemption), and a
LocalQueue (`gpu`) in the team's namespace that its jobs name. Kueue admits a job only when every rank's GPUs fit
(gang admission), and evicts and requeues it when its pods are not all ready in time.

Only GPUs count: CPU, memory and EFA interfaces follow from a pool's shape, and Kueue ignores them
(`excludeResourcePrefixes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelplane.terms.names import KUBERNETES_NAME_MAX, is_dns_label
from modelplane.terms.scheduling import GPU_RESOURCE, POOL_LABEL, gpu_toleration

API_VERSION = "kueue.x-k8s.io/v1beta2"
CONFIG_API_VERSION = "config.kueue.x-k8s.io/v1beta2"
COHORT = "modelplane"
"""Every team's ClusterQueue: idle quota is lent within it."""
LOCAL_QUEUE_NAME = "gpu"
"""The LocalQueue in each team's namespace; a job names it in its `kueue.x-k8s.io/queue-name` label."""
CLUSTER_QUEUE_PREFIX = "team-"
MAX_FLAVORS = 64
"""Kueue's limit on the flavors of one resource group: at most this many GPU pools."""
PODS_READY_TIMEOUT = "20m"
"""How long an admitted job's pods may take to all be ready (nodes launched, images pulled) before Kueue evicts
and requeues it, freeing what it holds: a cold scale-up of GPU nodes with a multi-GB trainer image takes 10-15."""
EXCLUDED_RESOURCE_PREFIXES = ("cpu", "memory", "ephemeral-storage", "hugepages-", "pods", "vpc.amazonaws.com/")
"""Resource names (by prefix) Kueue leaves out of quotas, so only GPUs count; anything else a pod requests must
be covered by its ClusterQueue or the job is never admitted."""
LABELS = {"app.kubernetes.io/part-of": "modelplane"}


@dataclass(frozen=True)
class TeamQueue:
    """One team's GPU queue."""

    name: str
    """DNS label; the ClusterQueue is `team-<name>`."""
    namespace: str
    """Where the team's jobs run: its LocalQueue sits there, and its ClusterQueue admits only from there."""
    gpu_quota: Mapping[str, int]
    """GPUs per pool guaranteed to the team (nominal quota); a pool not listed: 0."""
    can_borrow: bool = True
    """Run beyond the quota on GPUs other teams leave idle (reclaimed by preemption when they want them back)."""

    @property
    def cluster_queue(self) -> str:
        return f"{CLUSTER_QUEUE_PREFIX}{self.name}"


@dataclass(frozen=True)
class GpuFlavor:
    """One GPU pool as Kueue sees it."""

    pool: str
    gpus_at_max: int
    """GPUs of the pool at its max size: the most the teams' quotas of it may add up to."""


def resource_flavor_manifest(pool: str) -> dict[str, Any]:
    """The pool's flavor: Kueue places an admitted job's pods on the pool's nodes, tolerating the GPU taint."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ResourceFlavor",
        "metadata": {"name": pool, "labels": dict(LABELS)},
        "spec": {"nodeLabels": {POOL_LABEL: pool}, "tolerations": [gpu_toleration()]},
    }


def _flavor_quota(team: TeamQueue, pool: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"name": GPU_RESOURCE, "nominalQuota": team.gpu_quota.get(pool, 0)}
    if not team.can_borrow:
        resource["borrowingLimit"] = 0
    return {"name": pool, "resources": [resource]}


def cluster_queue_manifest(team: TeamQueue, flavors: Sequence[GpuFlavor]) -> dict[str, Any]:
    """The team's ClusterQueue: its GPUs of every pool, admitting only jobs from its namespace.

    Preemption: a team takes back its lent quota from any borrower, whatever the borrower's priority; within the
    team a job preempts only lower-priority ones. BestEffortFIFO: a job that does not fit does not block smaller
    ones behind it.
    """
    spec: dict[str, Any] = {
        "cohortName": COHORT,
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": team.namespace}},
        "queueingStrategy": "BestEffortFIFO",
        "preemption": {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"},
    }
    if flavors:
        # Without GPU pools the queue admits nothing; a resource group needs at least one flavor.
        spec["resourceGroups"] = [
            {"coveredResources": [GPU_RESOURCE], "flavors": [_flavor_quota(team, f.pool) for f in flavors]}
        ]
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterQueue",
        "metadata": {"name": team.cluster_queue, "labels": dict(LABELS)},
        "spec": spec,
    }


def local_queue_manifest(team: TeamQueue) -> dict[str, Any]:
    """The queue the team's jobs name, in its namespace, feeding its ClusterQueue."""
    return {
        "apiVersion": API_VERSION,
        "kind": "LocalQueue",
        "metadata": {"name": LOCAL_QUEUE_NAME, "namespace": team.namespace, "labels": dict(LABELS)},
        "spec": {"clusterQueue": team.cluster_queue},
    }


def _duplicates(what: str, values: Sequence[str]) -> list[str]:
    first: dict[str, int] = {}
    problems = []
    for index, value in enumerate(values):
        if value in first:
            problems.append(f"{what.format(index)}={value!r}: already used by {what.format(first[value])}")
        else:
            first[value] = index
    return problems


def queue_problems(teams: Sequence[TeamQueue], flavors: Sequence[GpuFlavor]) -> list[str]:
    """Why these teams' quotas cannot be Kueue objects on these pools; [] when they can."""
    problems: list[str] = []
    name_max = KUBERNETES_NAME_MAX - len(CLUSTER_QUEUE_PREFIX)
    pools = [flavor.pool for flavor in flavors]
    problems += _duplicates("pools[{}].pool", pools)
    if len(flavors) > MAX_FLAVORS:
        problems.append(f"pools: {len(flavors)} GPU pools; Kueue takes at most {MAX_FLAVORS} flavors per queue")
    for index, flavor in enumerate(flavors):
        if not is_dns_label(flavor.pool):
            problems.append(f"pools[{index}].pool={flavor.pool!r}: must be a DNS label (lowercase, digits, '-')")
        if flavor.gpus_at_max < 0:
            problems.append(f"pools[{index}].gpus_at_max={flavor.gpus_at_max}: must be 0 or more")
    for index, team in enumerate(teams):
        at = f"teams[{index}]"
        if not is_dns_label(team.name, name_max):
            problems.append(
                f"{at}.name={team.name!r}: must be a DNS label of at most {name_max} characters "
                f"(lowercase, digits, '-'), as the ClusterQueue is {CLUSTER_QUEUE_PREFIX}<name>"
            )
        if not is_dns_label(team.namespace):
            problems.append(f"{at}.namespace={team.namespace!r}: must be a namespace name (lowercase, digits, '-')")
        for pool, quota in team.gpu_quota.items():
            if pool not in pools:
                problems.append(
                    f"{at}.gpu_quota.{pool}={quota}: unknown pool; pools: {', '.join(pools) or 'none'}; "
                    "name one of them or remove the entry"
                )
            elif isinstance(quota, bool) or not isinstance(quota, int) or quota < 0:
                problems.append(f"{at}.gpu_quota.{pool}={quota!r}: must be a whole number of GPUs, 0 or more")
    problems += _duplicates("teams[{}].name", [team.name for team in teams])
    problems += _duplicates("teams[{}].namespace", [team.namespace for team in teams])
    problems += _oversubscribed(teams, flavors)
    return problems


def _oversubscribed(teams: Sequence[TeamQueue], flavors: Sequence[GpuFlavor]) -> list[str]:
    """Per pool, quotas adding up to more GPUs than the pool reaches: a guarantee Kueue could never keep."""
    problems = []
    for flavor in flavors:
        holders = [
            (index, quota)
            for index, team in enumerate(teams)
            if isinstance(quota := team.gpu_quota.get(flavor.pool, 0), int) and quota > 0
        ]
        total = sum(quota for _, quota in holders)
        if holders and total > flavor.gpus_at_max:
            *others, (last, quota) = holders
            with_others = f" with {', '.join(f'teams[{i}]: {q}' for i, q in others)}" if others else ""
            problems.append(
                f"teams[{last}].gpu_quota.{flavor.pool}={quota}: quotas of pool {flavor.pool!r} add up to {total} "
                f"GPUs{with_others}, above the {flavor.gpus_at_max} it has at its max size; lower the quotas or "
                "raise the pool's max_size"
            )
    return problems


def kueue_manager_config() -> dict[str, Any]:
    """Kueue's Configuration, for the chart's `managerConfig.controllerManagerConfigYaml`.

    The chart replaces its whole default with this, so its settings are restated first; modelplane's follow.
    """
    return {
        "apiVersion": CONFIG_API_VERSION,
        "kind": "Configuration",
        "health": {"healthProbeBindAddress": ":8081"},
        "metrics": {"bindAddress": ":8443"},
        "webhook": {"port": 9443},
        "leaderElection": {"leaderElect": True, "resourceName": "c1f6bfd2.kueue.x-k8s.io"},
        "controller": {
            "groupKindConcurrency": {
                "Job.batch": 5,
                "Pod": 5,
                "Workload.kueue.x-k8s.io": 10,
                "LocalQueue.kueue.x-k8s.io": 5,
                "ClusterQueue.kueue.x-k8s.io": 5,
                "ResourceFlavor.kueue.x-k8s.io": 1,
            }
        },
        "clientConnection": {"qps": 300, "burst": 500},
        # Only what modelplane submits: TrainJobs, and plain Jobs for batch work. A job without a queue-name
        # label is left alone (manageJobsWithoutQueueName stays false).
        "integrations": {"frameworks": ["batch/job", "trainer.kubeflow.org/trainjob"]},
        # All or nothing: a job whose ranks are not all ready in time is evicted and requeued, so a half-placed
        # gang never holds GPUs. blockAdmission false: other jobs are admitted meanwhile.
        "waitForPodsReady": {"timeout": PODS_READY_TIMEOUT, "blockAdmission": False},
        "resources": {"excludeResourcePrefixes": list(EXCLUDED_RESOURCE_PREFIXES)},
    }


def counted_resources(requested: Sequence[str]) -> list[str]:
    """The requested resource names Kueue counts against quotas under `kueue_manager_config`."""
    return [name for name in requested if not name.startswith(EXCLUDED_RESOURCE_PREFIXES)]
