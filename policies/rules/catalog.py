"""Every rule of the modelplane platform pack, and its enforcement level in each environment.

The levels here are what `policies/modelplane_platform/config/ENV.json` must say (a test keeps them
in step) and what the README's table shows: advisory in dev, mandatory in staging and prod, with
the exceptions below. A new environment (one without a file of its own) gets `config/default.json`:
mandatory, but advice where a copy of dev cannot comply by design.
"""

from __future__ import annotations

from pulumi_policy import Policy

from modelplane.policies.rules import (
    alerting,
    budget,
    cluster,
    compute,
    deployability,
    exposure,
    gpu_pools,
    iam,
    kms,
    network,
    nodes,
    pod_security,
    registry,
    storage,
    workloads,
)
from modelplane.policies.rules.rule import Rule

ENVIRONMENTS = ("dev", "staging", "prod")
NEW_ENVIRONMENT = "default"
"""The config of an environment without a file of its own."""
CONFIGS = (*ENVIRONMENTS, NEW_ENVIRONMENT)
DEFAULT_LEVELS = {"dev": "advisory", "staging": "mandatory", "prod": "mandatory", NEW_ENVIRONMENT: "mandatory"}
LEVEL_EXCEPTIONS: dict[str, dict[str, str]] = {
    # dev's API server is public for the team's office CIDR (config validation keeps any public endpoint off the
    # internet); staging should follow prod. A new environment starts as a copy of dev: whether its endpoint must be
    # private is decided in its own config/ENV.json.
    cluster.EKS_PRIVATE_ENDPOINT.name: {
        "dev": "disabled",
        "staging": "advisory",
        "prod": "mandatory",
        NEW_ENVIRONMENT: "disabled",
    },
    # Only prod serves the public.
    exposure.INTERNAL_LOAD_BALANCERS.name: {"dev": "advisory", "staging": "mandatory", "prod": "disabled"},
    exposure.INTERNAL_INGRESSES.name: {"dev": "advisory", "staging": "mandatory", "prod": "disabled"},
    # Config validation already requires a critical receiver in prod; elsewhere it is advice.
    alerting.CRITICAL_RECEIVER.name: {
        "dev": "disabled",
        "staging": "advisory",
        "prod": "mandatory",
        NEW_ENVIRONMENT: "advisory",
    },
}

RULES: list[Rule] = [
    *storage.RULES,
    *registry.RULES,
    *iam.RULES,
    *cluster.RULES,
    *kms.RULES,
    *network.RULES,
    *compute.RULES,
    *nodes.RULES,
    *gpu_pools.RULES,
    *workloads.RULES,
    *pod_security.RULES,
    *exposure.RULES,
    *alerting.RULES,
    *budget.RULES,
    *deployability.RULES,
]


def level(rule_name: str, environment: str) -> str:
    """The documented enforcement level of `rule_name` in `environment`."""
    return LEVEL_EXCEPTIONS.get(rule_name, {}).get(environment, DEFAULT_LEVELS[environment])


def pack_policies() -> list[Policy]:
    """The Policy SDK objects for every rule, as the pack and the offline check both use them."""
    return [rule.policy() for rule in RULES]


def markdown_table() -> str:
    """The README's policy table."""
    lines = [
        "| rule | kind | enforces | why | dev | staging | prod | new environment |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rule in RULES:
        levels = " | ".join(level(rule.name, env) for env in CONFIGS)
        lines.append(f"| `{rule.name}` | {rule.kind} | {rule.description} | {rule.why} | {levels} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
