from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from modelplane.plan.crd_validation import (
    KARPENTER_VERSION,
    KUEUE_VERSION,
    SCHEMA_DIR,
    VALIDATED_KINDS,
    crd_schema,
    crd_schema_problems,
)

KARPENTER = "karpenter.sh/v1"
KARPENTER_AWS = "karpenter.k8s.aws/v1"
KUEUE = "kueue.x-k8s.io/v1beta2"


def gpu_node_pool() -> dict[str, Any]:
    return {
        "apiVersion": KARPENTER,
        "kind": "NodePool",
        "metadata": {"name": "gpu-h100", "labels": {"app.kubernetes.io/managed-by": "modelplane"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"modelplane.io/pool": "gpu-h100"}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                    "requirements": [
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p5.48xlarge"]},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand", "spot"]},
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                        {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]},
                    ],
                    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                    "startupTaints": [{"key": "node.modelplane.io/initializing", "effect": "NoExecute"}],
                    "expireAfter": "720h",
                    "terminationGracePeriod": "48h",
                },
            },
            "limits": {"nvidia.com/gpu": 64, "cpu": "1536", "memory": "16Ti"},
            "disruption": {
                "consolidationPolicy": "WhenEmpty",
                "consolidateAfter": "30m",
                "budgets": [
                    {"nodes": "10%"},
                    {"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h", "reasons": ["Drifted"]},
                ],
            },
            "weight": 50,
        },
    }


def gpu_node_class() -> dict[str, Any]:
    discovery = {"karpenter.sh/discovery": "modelplane-prod"}
    return {
        "apiVersion": KARPENTER_AWS,
        "kind": "EC2NodeClass",
        "metadata": {"name": "gpu"},
        "spec": {
            "amiSelectorTerms": [{"alias": "al2023@latest"}],
            "role": "KarpenterNodeRole-modelplane-prod",
            "subnetSelectorTerms": [{"tags": discovery}],
            "securityGroupSelectorTerms": [{"tags": discovery}],
            "metadataOptions": {
                "httpEndpoint": "enabled",
                "httpProtocolIPv6": "disabled",
                "httpPutResponseHopLimit": 1,
                "httpTokens": "required",
            },
            "blockDeviceMappings": [
                {
                    "deviceName": "/dev/xvda",
                    "rootVolume": True,
                    "ebs": {
                        "volumeSize": "500Gi",
                        "volumeType": "gp3",
                        "iops": 10000,
                        "throughput": 500,
                        "encrypted": True,
                        "deleteOnTermination": True,
                    },
                }
            ],
            "tags": {"modelplane.io/environment": "prod"},
        },
    }


def resource_flavor() -> dict[str, Any]:
    return {
        "apiVersion": KUEUE,
        "kind": "ResourceFlavor",
        "metadata": {"name": "h100-on-demand"},
        "spec": {
            "nodeLabels": {"karpenter.sh/nodepool": "gpu-h100", "karpenter.sh/capacity-type": "on-demand"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }


def cluster_queue() -> dict[str, Any]:
    return {
        "apiVersion": KUEUE,
        "kind": "ClusterQueue",
        "metadata": {"name": "research"},
        "spec": {
            "cohortName": "gpu-pool",
            "namespaceSelector": {},
            "queueingStrategy": "BestEffortFIFO",
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                    "flavors": [
                        {
                            "name": "h100-on-demand",
                            "resources": [
                                {"name": "cpu", "nominalQuota": 384},
                                {"name": "memory", "nominalQuota": "4Ti"},
                                {"name": "nvidia.com/gpu", "nominalQuota": 16, "borrowingLimit": 8},
                            ],
                        },
                        {
                            "name": "h100-spot",
                            "resources": [
                                {"name": "cpu", "nominalQuota": "192", "borrowingLimit": "96"},
                                {"name": "memory", "nominalQuota": "2Ti"},
                                {"name": "nvidia.com/gpu", "nominalQuota": 8, "borrowingLimit": 8, "lendingLimit": 4},
                            ],
                        },
                    ],
                }
            ],
            "preemption": {
                "reclaimWithinCohort": "Any",
                "borrowWithinCohort": {"policy": "LowerPriority", "maxPriorityThreshold": 100},
                "withinClusterQueue": "LowerPriority",
            },
            "flavorFungibility": {"whenCanBorrow": "MayStopSearch", "whenCanPreempt": "TryNextFlavor"},
        },
    }


def local_queue() -> dict[str, Any]:
    return {
        "apiVersion": KUEUE,
        "kind": "LocalQueue",
        "metadata": {"name": "training", "namespace": "team-research"},
        "spec": {"clusterQueue": "research"},
    }


def priority_class() -> dict[str, Any]:
    return {
        "apiVersion": KUEUE,
        "kind": "WorkloadPriorityClass",
        "metadata": {"name": "production"},
        "value": 1000,
        "description": "Production training runs; may preempt experiments.",
    }


VALID = {
    "NodePool": gpu_node_pool,
    "EC2NodeClass": gpu_node_class,
    "ResourceFlavor": resource_flavor,
    "ClusterQueue": cluster_queue,
    "LocalQueue": local_queue,
    "WorkloadPriorityClass": priority_class,
}


def problems_at(problems: list[str], path: str) -> list[str]:
    return [p for p in problems if p.startswith(f"{path}: ")]


def test_pinned_versions_and_kinds() -> None:
    assert (KARPENTER_VERSION, KUEUE_VERSION) == ("1.14.1", "0.19.2")
    assert {
        (KARPENTER, "NodePool"),
        (KARPENTER_AWS, "EC2NodeClass"),
        (KUEUE, "ResourceFlavor"),
        (KUEUE, "ClusterQueue"),
        (KUEUE, "LocalQueue"),
        (KUEUE, "WorkloadPriorityClass"),
    } <= VALIDATED_KINDS
    assert {kind for _, kind in VALIDATED_KINDS} == set(VALID)


def test_every_vendored_schema_is_a_structural_object_schema_named_in_sources() -> None:
    sources = (SCHEMA_DIR / "SOURCES.md").read_text()
    for api_version, kind in VALIDATED_KINDS:
        schema = crd_schema(api_version, kind)
        assert schema["type"] == "object"
        assert {"apiVersion", "kind", "metadata"} <= set(schema["properties"])
        group, version = api_version.split("/")
        assert f"`{group}_{version}_{kind}.json`" in sources
    assert "bde00654cd316fddb3dccfba3f5ac07039865429" in sources
    assert "8eab68778fc1b52affe165fdf5af29d1e9b4f3cb" in sources
    for path in SCHEMA_DIR.glob("*.json"):
        assert schema_keywords(json.loads(path.read_text())).isdisjoint({"description", "$ref"}), path.name


def schema_keywords(node: Any) -> set[str]:
    """Every keyword used in a schema, leaving out the names of properties (one may be called `description`)."""
    if isinstance(node, list):
        return set().union(*(schema_keywords(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        if key == "properties":
            found |= set().union(*(schema_keywords(sub) for sub in value.values())) if value else set()
        elif key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not"):
            found |= schema_keywords(value)
    return found


def test_a_property_called_description_survives_stripping() -> None:
    assert crd_schema(KUEUE, "WorkloadPriorityClass")["properties"]["description"]["type"] == "string"


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_examples_pass(kind: str) -> None:
    assert crd_schema_problems(VALID[kind]()) == []


def test_validation_does_not_change_the_manifest() -> None:
    manifest = gpu_node_class()
    del manifest["spec"]["metadataOptions"]
    before = copy.deepcopy(manifest)
    assert crd_schema_problems(manifest) == []
    assert manifest == before


# --- NodePool --------------------------------------------------------------------------------------------------


def test_node_pool_unknown_field_is_named() -> None:
    manifest = gpu_node_pool()
    manifest["spec"]["template"]["spec"]["instanceTypes"] = ["p5.48xlarge"]  # a v1alpha5 Provisioner habit
    problems = crd_schema_problems(manifest)
    assert len(problems) == 1
    assert problems[0].startswith("spec.template.spec.instanceTypes: unknown field")


def test_node_pool_wrong_types_and_enum() -> None:
    manifest = gpu_node_pool()
    manifest["spec"]["weight"] = "50"
    manifest["spec"]["limits"]["nvidia.com/gpu"] = 1.5
    manifest["spec"]["template"]["spec"]["taints"][0]["effect"] = "NoExecution"
    problems = crd_schema_problems(manifest)
    assert problems_at(problems, "spec.weight") == ["spec.weight: '50' is not of type 'integer'"]
    assert problems_at(problems, 'spec.limits["nvidia.com/gpu"]') == [
        'spec.limits["nvidia.com/gpu"]: 1.5 is not an integer or a string'
    ]
    assert any("'NoExecution' is not one of" in p for p in problems_at(problems, "spec.template.spec.taints[0].effect"))
    assert len(problems) == 3


def test_node_pool_missing_required_fields() -> None:
    manifest = gpu_node_pool()
    del manifest["spec"]["template"]["spec"]["nodeClassRef"]
    del manifest["spec"]["disruption"]["consolidateAfter"]
    problems = crd_schema_problems(manifest)
    assert problems == [
        "spec.disruption.consolidateAfter: required field is missing",
        "spec.template.spec.nodeClassRef: required field is missing",
    ]


def test_node_pool_patterns_and_quantities() -> None:
    manifest = gpu_node_pool()
    manifest["spec"]["limits"]["memory"] = "16 TiB"
    manifest["spec"]["disruption"]["consolidateAfter"] = "30 minutes"
    problems = crd_schema_problems(manifest)
    assert [p.split(":")[0] for p in problems] == ["spec.disruption.consolidateAfter", "spec.limits.memory"]
    assert all("does not match" in p for p in problems)


def test_defaults_satisfy_required_fields_as_the_api_server_would() -> None:
    # disruption defaults to {consolidateAfter: 0s}; budgets' `nodes` defaults to 10% but is also required.
    manifest = gpu_node_pool()
    del manifest["spec"]["disruption"]
    assert crd_schema_problems(manifest) == []


def test_a_removed_api_version_of_a_vendored_kind_is_a_problem() -> None:
    manifest = gpu_node_pool()
    manifest["apiVersion"] = "karpenter.sh/v1beta1"
    assert crd_schema_problems(manifest) == [
        "apiVersion: NodePool is not served at karpenter.sh/v1beta1 by the pinned CRDs; use karpenter.sh/v1"
    ]


def test_other_kinds_are_not_checked() -> None:
    assert crd_schema_problems({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": 1}}) == []
    assert crd_schema_problems({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Cohort", "spec": {"x": 1}}) == []
    assert crd_schema_problems({"kind": "NodePool"}) == []


# --- EC2NodeClass ----------------------------------------------------------------------------------------------


def test_node_class_unknown_field_is_named() -> None:
    manifest = gpu_node_class()
    manifest["spec"]["metadataOptions"]["httpPutResponseHopLimt"] = 2
    problems = crd_schema_problems(manifest)
    assert len(problems) == 1
    assert problems[0].startswith("spec.metadataOptions.httpPutResponseHopLimt: unknown field")


def test_node_class_wrong_type_and_enum() -> None:
    manifest = gpu_node_class()
    manifest["spec"]["blockDeviceMappings"][0]["ebs"]["encrypted"] = "true"
    manifest["spec"]["blockDeviceMappings"][0]["ebs"]["volumeType"] = "gp4"
    manifest["spec"]["metadataOptions"]["httpTokens"] = "optinal"
    problems = crd_schema_problems(manifest)
    assert problems_at(problems, "spec.blockDeviceMappings[0].ebs.encrypted") == [
        "spec.blockDeviceMappings[0].ebs.encrypted: 'true' is not of type 'boolean'"
    ]
    assert len(problems_at(problems, "spec.blockDeviceMappings[0].ebs.volumeType")) == 1
    assert len(problems_at(problems, "spec.metadataOptions.httpTokens")) == 1
    assert len(problems) == 3


def test_node_class_missing_required_selector_terms() -> None:
    manifest = gpu_node_class()
    del manifest["spec"]["subnetSelectorTerms"]
    del manifest["spec"]["amiSelectorTerms"]
    assert crd_schema_problems(manifest) == [
        "spec.amiSelectorTerms: required field is missing",
        "spec.subnetSelectorTerms: required field is missing",
    ]


def test_node_class_bounds() -> None:
    manifest = gpu_node_class()
    manifest["spec"]["metadataOptions"]["httpPutResponseHopLimit"] = 0
    manifest["spec"]["amiSelectorTerms"] = []
    problems = crd_schema_problems(manifest)
    assert [p.split(":")[0] for p in problems] == [
        "spec.amiSelectorTerms",
        "spec.metadataOptions.httpPutResponseHopLimit",
    ]


# --- Kueue -----------------------------------------------------------------------------------------------------


def test_resource_flavor_bad_cases() -> None:
    manifest = resource_flavor()
    manifest["spec"]["nodeSelector"] = {"a": "b"}  # it is nodeLabels
    manifest["spec"]["tolerations"][0]["tolerationSeconds"] = "60"
    manifest["spec"]["nodeTaints"] = [{"key": "nvidia.com/gpu"}]
    problems = crd_schema_problems(manifest)
    assert problems_at(problems, "spec.nodeSelector")[0].startswith("spec.nodeSelector: unknown field")
    assert problems_at(problems, "spec.tolerations[0].tolerationSeconds") == [
        "spec.tolerations[0].tolerationSeconds: '60' is not of type 'integer'"
    ]
    assert problems_at(problems, "spec.nodeTaints[0].effect") == [
        "spec.nodeTaints[0].effect: required field is missing"
    ]
    assert len(problems) == 3


def test_cluster_queue_bad_cases() -> None:
    manifest = cluster_queue()
    flavor = manifest["spec"]["resourceGroups"][0]["flavors"][0]
    flavor["resources"][2]["borrowLimit"] = 8  # it is borrowingLimit
    del flavor["resources"][0]["nominalQuota"]
    flavor["resources"][1]["nominalQuota"] = ["4Ti"]
    manifest["spec"]["preemption"]["withinClusterQueue"] = "Always"
    problems = crd_schema_problems(manifest)
    flavor_path = "spec.resourceGroups[0].flavors[0]"
    assert problems_at(problems, f"{flavor_path}.resources[2].borrowLimit")[0].endswith(
        "unknown field: not in the CRD schema, so the API server would silently drop it"
    )
    assert problems_at(problems, f"{flavor_path}.resources[0].nominalQuota") == [
        f"{flavor_path}.resources[0].nominalQuota: required field is missing"
    ]
    assert problems_at(problems, f"{flavor_path}.resources[1].nominalQuota") == [
        f"{flavor_path}.resources[1].nominalQuota: ['4Ti'] is not an integer or a string"
    ]
    assert len(problems_at(problems, "spec.preemption.withinClusterQueue")) == 1
    assert len(problems) == 4


def test_cluster_queue_v1beta1_cohort_is_v1beta2_cohort_name() -> None:
    manifest = cluster_queue()
    manifest["spec"]["cohort"] = manifest["spec"].pop("cohortName")
    assert problems_at(crd_schema_problems(manifest), "spec.cohort")[0].startswith("spec.cohort: unknown field")
    manifest["apiVersion"] = "kueue.x-k8s.io/v1beta1"
    assert crd_schema_problems(manifest) == []


def test_list_map_keys_must_be_unique() -> None:
    manifest = cluster_queue()
    flavors = manifest["spec"]["resourceGroups"][0]["flavors"]
    flavors.append(copy.deepcopy(flavors[0]))
    problems = crd_schema_problems(manifest)
    assert problems_at(problems, "spec.resourceGroups[0].flavors[2]") == [
        "spec.resourceGroups[0].flavors[2]: duplicate entry with name='h100-on-demand' (also at index 0)"
    ]


def test_local_queue_bad_cases() -> None:
    manifest = local_queue()
    manifest["spec"]["clusterQueue"] = 7
    manifest["spec"]["queue"] = "research"
    manifest["spec"]["stopPolicy"] = "Stop"
    problems = crd_schema_problems(manifest)
    assert problems_at(problems, "spec.clusterQueue") == ["spec.clusterQueue: 7 is not of type 'string'"]
    assert problems_at(problems, "spec.queue")[0].startswith("spec.queue: unknown field")
    assert len(problems_at(problems, "spec.stopPolicy")) == 1
    assert len(problems) == 3


def test_priority_class_bad_cases() -> None:
    assert crd_schema_problems({**priority_class(), "value": "1000"}) == ["value: '1000' is not of type 'integer'"]
    assert crd_schema_problems({**priority_class(), "value": 2**31}) == ["value: 2147483648 is not a 'int32'"]
    missing = priority_class()
    del missing["value"]
    assert crd_schema_problems(missing) == ["value: required field is missing"]
    assert crd_schema_problems({**priority_class(), "spec": {"value": 1}})[0].startswith("spec: unknown field")


# --- metadata, placeholders ------------------------------------------------------------------------------------


def test_metadata_name_is_checked() -> None:
    nameless = local_queue()
    del nameless["metadata"]["name"]
    assert crd_schema_problems(nameless) == ["metadata: name (or generateName) is required"]
    upper = priority_class()
    upper["metadata"]["name"] = "Production"
    assert crd_schema_problems(upper) == [
        "metadata.name: 'Production' is not a valid name: lowercase letters, digits, '-' and '.' (RFC 1123 subdomain)"
    ]
    labels = resource_flavor()
    labels["metadata"]["labels"] = {"tier": 1}
    assert crd_schema_problems(labels) == ["metadata.labels.tier: 1 is not of type 'string'"]


def test_plan_placeholders_stand_for_any_value() -> None:
    manifest = gpu_node_class()
    manifest["spec"]["role"] = "[unknown]"
    manifest["spec"]["blockDeviceMappings"][0]["ebs"]["kmsKeyID"] = "[unknown]"
    manifest["spec"]["metadataOptions"]["httpPutResponseHopLimit"] = "[unknown]"
    assert crd_schema_problems(manifest) == []
    manifest["spec"]["metadataOptions"]["httpPutResponseHopLimit"] = "1"
    assert crd_schema_problems(manifest) == [
        "spec.metadataOptions.httpPutResponseHopLimit: '1' is not of type 'integer'"
    ]


def test_date_time_format() -> None:
    manifest = resource_flavor()
    manifest["spec"]["nodeTaints"] = [{"key": "a", "effect": "NoSchedule", "timeAdded": "2026-01-02T03:04:05Z"}]
    assert crd_schema_problems(manifest) == []
    manifest["spec"]["nodeTaints"][0]["timeAdded"] = "yesterday"
    assert crd_schema_problems(manifest) == ["spec.nodeTaints[0].timeAdded: 'yesterday' is not a 'date-time'"]


def test_whole_floats_from_the_engine_count_as_integers() -> None:
    manifest = gpu_node_pool()
    manifest["spec"]["weight"] = 50.0
    assert crd_schema_problems(manifest) == []
    manifest["spec"]["weight"] = 50.5
    assert crd_schema_problems(manifest) == ["spec.weight: 50.5 is not of type 'integer'"]
