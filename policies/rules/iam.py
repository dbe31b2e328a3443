"""IAM rule: inline and managed policy documents the stack writes grant named actions on named resources.

AWS-managed policies attached by ARN (AmazonEKSWorkerNodePolicy, ...) are AWS's to scope and are
not inspected; documents whose content is not yet known (preview) are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.iam_actions import only_unscopable
from modelplane.policies.rules.props import as_dict, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule

POLICY_DOCUMENT_TYPES = frozenset(
    {
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/policy:Policy",
        "aws:iam/userPolicy:UserPolicy",
        "aws:iam/groupPolicy:GroupPolicy",
    }
)
WILDCARD_RESOURCES = ("*", "arn:aws:s3:::*")


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str)]


def _is_whole_bucket(resource: str) -> bool:
    """`arn:aws:s3:::BUCKET/*`: every object of a bucket, where jobs get only their own prefixes."""
    return resource.startswith("arn:aws:s3:::") and resource.count("/") == 1 and resource.endswith("/*")


def _statement_problems(index: int, statement: dict[str, Any]) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    where = f"Statement[{index}]" + (f" ({statement['Sid']})" if isinstance(statement.get("Sid"), str) else "")
    problems = []
    if "NotAction" in statement or "NotResource" in statement:
        problems.append(f"{where}: Allow with NotAction/NotResource grants everything not listed; list what it grants")
    wild_actions = [a for a in _strings(statement.get("Action")) if a == "*" or a.endswith(":*")]
    if wild_actions:
        problems.append(f"{where}: grants wildcard actions {wild_actions}; name the actions the role needs")
    wild_resources = [r for r in _strings(statement.get("Resource")) if r in WILDCARD_RESOURCES or _is_whole_bucket(r)]
    # Actions with no resource-level permissions (ec2:Describe*, pricing:GetProducts) only take "*".
    if wild_resources and not (wild_resources == ["*"] and only_unscopable(_strings(statement.get("Action")))):
        problems.append(f"{where}: grants on wildcard resources {wild_resources}; scope it to the prefixes it needs")
    return problems


def _no_wildcards(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    document = props.get("policy")
    if is_unknown(document) or document is None:
        return []
    try:
        policy = json.loads(document) if isinstance(document, str) else as_dict(document)
    except json.JSONDecodeError:
        return ["policy is not valid JSON"]
    statements = policy.get("Statement")
    statements = statements if isinstance(statements, list) else [statements]
    return [p for i, s in enumerate(statements) for p in _statement_problems(i, as_dict(s))]


IAM_NO_WILDCARDS = ResourceRule(
    name="aws-iam-policy-disallow-wildcards",
    description="IAM policy documents grant no wildcard actions ('*', 's3:*') and no wildcard resources "
    "('*', 'arn:aws:s3:::*', a whole bucket).",
    why="A training job's role reads its inputs and writes its own prefixes; a wildcard lets one job "
    "read or overwrite every team's checkpoints and models.",
    resource_types=POLICY_DOCUMENT_TYPES,
    check=_no_wildcards,
)

RULES: list[Rule] = [IAM_NO_WILDCARDS]
