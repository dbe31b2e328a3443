"""IAM rules over every policy document the stack writes, wherever it sits.

- Identity policies (a role's `inlinePolicies`, RolePolicy, UserPolicy, GroupPolicy, Policy) grant named actions
  on named resources: action patterns are expanded against AWS's own action list (`iam_actions`), so `s3:*Object`
  or `iam:Pass*` count for the writes they grant, and a resource covering every role, user or policy of an account
  counts like `*` for actions that change it.
- AWS-managed policies attached by ARN are AWS's to scope, except those that make a principal an administrator.
- Trust policies and resource policies (bucket, key, queue, topic, repository, secret) name who they let in: not
  anyone, unless a condition narrows it to an account, organisation or ARN; a web-identity trust names its subject.

Documents whose content is not yet known (preview) are skipped; one that cannot be read is reported as undecided.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from modelplane.policies.rules.iam_actions import READ_LEVELS, Privilege, expand, is_pattern, only_unscopable
from modelplane.policies.rules.policy_documents import (
    Statement,
    names_anyone,
    narrows_principal,
    positive_conditions,
    principals,
    statements,
    strings,
    unreadable_elements,
)
from modelplane.policies.rules.props import as_list, dig, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule, Undecided

ROLE_TYPE = "aws:iam/role:Role"
POLICY_DOCUMENT_TYPES = frozenset(
    {
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/policy:Policy",
        "aws:iam/userPolicy:UserPolicy",
        "aws:iam/groupPolicy:GroupPolicy",
    }
)
ATTACHMENT_TYPES = {
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "policyArn",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment": "policyArn",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": "policyArn",
    "aws:iam/policyAttachment:PolicyAttachment": "policyArn",
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive": "policyArns",
    "aws:iam/userPolicyAttachmentsExclusive:UserPolicyAttachmentsExclusive": "policyArns",
    "aws:iam/groupPolicyAttachmentsExclusive:GroupPolicyAttachmentsExclusive": "policyArns",
    ROLE_TYPE: "managedPolicyArns",
}
RESOURCE_POLICY_TYPES = frozenset(
    {
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:kms/key:Key",
        "aws:kms/keyPolicy:KeyPolicy",
        "aws:sqs/queue:Queue",
        "aws:sqs/queuePolicy:QueuePolicy",
        "aws:sns/topic:Topic",
        "aws:sns/topicPolicy:TopicPolicy",
        "aws:ecr/repositoryPolicy:RepositoryPolicy",
        "aws:ecr/registryPolicy:RegistryPolicy",
        "aws:secretsmanager/secret:Secret",
        "aws:secretsmanager/secretPolicy:SecretPolicy",
    }
)
ADMIN_MANAGED_POLICIES = {
    "AdministratorAccess": "every action on every resource",
    "AdministratorAccess-Amplify": "administrator access through Amplify's IAM and CloudFormation rights",
    "AdministratorAccess-AWSElasticBeanstalk": "administrator access through Elastic Beanstalk's IAM rights",
    "PowerUserAccess": "every action outside IAM and Organizations on every resource",
    "IAMFullAccess": "every IAM action: whoever holds it can grant itself anything",
    "AWSOrganizationsFullAccess": "every Organizations action: accounts, policies and the organisation itself",
    "AmazonS3FullAccess": "every S3 action on every bucket: every team's datasets, checkpoints and models",
}
"""AWS-managed policies that make their holder an administrator of the account, or of all its data."""

WHOLE_S3 = re.compile(r"^arn:[^:]+:s3:::\*$")
WHOLE_BUCKET = re.compile(r"^arn:[^:]+:s3:::[^/*]+/\*$")
"""`arn:aws:s3:::BUCKET/*`: every object of a bucket, where jobs get only their own prefixes."""
EVERY_IAM_ENTITY = re.compile(r"^arn:[^:]+:iam::[^:]*:(?P<type>[a-z-]*)/?\*$")
"""`arn:aws:iam::ACCOUNT:role/*`, `...:user/*`, `...:*`: every role, user, policy (...) of the account."""
TAG_CONDITION_PREFIXES = ("aws:resourcetag/", "iam:resourcetag/", "aws:requesttag/")
IDENTITY_KEYS = {"cognito-identity.amazonaws.com": "aud", "graph.facebook.com": "id", "www.amazon.com": "user_id"}
"""The condition key naming who a web-identity token belongs to, where it is not the OIDC `sub`."""


def _where(label: str, statement: Statement) -> str:
    return f"{label} {statement.where}" if label else statement.where


def _wildcard_actions(statement: Statement, where: str) -> list[str]:
    """Action patterns that grant more than reading, each with what it expands to; undecided ones reported as such."""
    broad, unknown = [], []
    for action in strings(statement.body.get("Action")):
        if action == "*":
            broad.append("'*' (every action of every service)")
            continue
        if not is_pattern(action):
            continue
        privileges = expand(action)
        if not privileges:
            unknown.append(action)
            continue
        powerful = sorted({p.action for p in privileges if p.access_level not in READ_LEVELS})
        if powerful:
            levels = "/".join(sorted({p.access_level for p in privileges if p.access_level not in READ_LEVELS}))
            shown = ", ".join(powerful[:3]) + (f" and {len(powerful) - 3} more" if len(powerful) > 3 else "")
            broad.append(f"'{action}' ({levels}: {shown})")
    problems: list[str] = []
    if broad:
        problems.append(f"{where}: grants wildcard actions {'; '.join(broad)}; name the actions the role needs")
    if unknown:
        problems.append(
            Undecided(f"{where}: action patterns {unknown} match no action AWS defines; cannot tell what they grant")
        )
    return problems


def _changing_iam_actions(actions: list[str]) -> list[Privilege]:
    return [
        privilege
        for action in actions
        for privilege in expand(action)
        if privilege.action.startswith("iam:") and privilege.access_level not in READ_LEVELS
    ]


def _wildcard_resources(statement: Statement, where: str) -> list[str]:
    actions = strings(statement.body.get("Action"))
    resources = strings(statement.body.get("Resource"))
    problems = []
    wild = [r for r in resources if r == "*" or WHOLE_S3.match(r) or WHOLE_BUCKET.match(r)]
    # Actions with no resource-level permissions (ec2:Describe*, pricing:GetProducts) only take "*".
    if wild and not (wild == ["*"] and only_unscopable(actions)):
        problems.append(f"{where}: grants on wildcard resources {wild}; scope it to the resources or prefixes it needs")
    every_entity = [r for r in resources if EVERY_IAM_ENTITY.match(r)]
    tag_scoped = any(key.startswith(TAG_CONDITION_PREFIXES) for key in positive_conditions(statement))
    changing = sorted({p.action for p in _changing_iam_actions(actions)})
    if every_entity and changing and not tag_scoped:
        problems.append(
            f"{where}: grants {', '.join(changing[:4])}{' ...' if len(changing) > 4 else ''} on {every_entity}, "
            "every such IAM entity of the account (a role could pass or change an administrator's); "
            "name the entities, a path prefix, or require their tags"
        )
    return problems


def _identity_statement_problems(statement: Statement, label: str) -> list[str]:
    if not statement.allows:
        return []
    where = _where(label, statement)
    unreadable = unreadable_elements(statement, "Action", "NotAction", "Resource", "NotResource")
    if unreadable:
        return [Undecided(f"{where}: {', '.join(unreadable)} is neither a string nor a list of strings")]
    problems = []
    if "NotAction" in statement.body or "NotResource" in statement.body:
        problems.append(f"{where}: Allow with NotAction/NotResource grants everything not listed; list what it grants")
    return problems + _wildcard_actions(statement, where) + _wildcard_resources(statement, where)


def _identity_documents(type_: str, props: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(label for messages, field, document) of each identity policy the resource carries."""
    if type_ != ROLE_TYPE:
        return [("", "policy", props.get("policy"))]
    inline = props.get("inlinePolicies")
    if is_unknown(inline):
        return []
    documents = []
    for index, entry in enumerate(as_list(inline)):
        name = dig(entry, "name")
        label = f"inlinePolicies[{index}]" + (f" ({name})" if isinstance(name, str) else "")
        documents.append((label, f"{label}.policy", dig(entry, "policy")))
    return documents


def _document_problems(
    label: str, field: str, document: Any, statement_problems: Callable[[Statement, str], list[str]]
) -> list[str]:
    found = statements(document, field)
    if found is None:
        return []
    if isinstance(found, Undecided):
        return [found]
    return [problem for statement in found for problem in statement_problems(statement, label)]


def _no_wildcards(type_: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    return [
        problem
        for label, field, document in _identity_documents(type_, props)
        for problem in _document_problems(label, field, document, _identity_statement_problems)
    ]


def _admin_policies(type_: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    field = ATTACHMENT_TYPES[type_]
    value = props.get(field)
    if value is None or is_unknown(value):
        return []
    arns = value if isinstance(value, list) else [value]
    unreadable = [arn for arn in arns if not isinstance(arn, str) and not is_unknown(arn)]
    if unreadable:
        return [Undecided(f"{field} holds {unreadable!r}, not policy ARNs")]
    problems = []
    for arn in (a for a in arns if isinstance(a, str)):
        match = re.match(r"^arn:[^:]+:iam::aws:policy/(?:.*/)?(?P<name>[^/]+)$", arn)
        if match and match["name"] in ADMIN_MANAGED_POLICIES:
            problems.append(
                f"{field} attaches {match['name']} ({ADMIN_MANAGED_POLICIES[match['name']]}); "
                "attach a policy granting only what the principal does"
            )
    return problems


def _web_identity_problem(statement: Statement, provider: str) -> str | None:
    """A web-identity trust that names no subject lets every identity of the provider in (any GitHub repository,
    any ServiceAccount of the cluster)."""
    if ":saml-provider/" in provider:
        return None
    issuer = provider.split(":oidc-provider/", 1)[-1].lower()
    required = ":" + IDENTITY_KEYS.get(issuer, "sub")
    values = positive_conditions(statement).get(issuer + required, [])
    if values and all(value != "*" for value in values):
        return None
    return (
        f"{statement.where}: trusts every identity of {issuer} (no condition on {issuer}{required}); "
        f"require the subject (e.g. StringEquals {issuer}{required})"
    )


def _trust_statement_problems(statement: Statement, _label: str) -> list[str]:
    if not statement.allows:
        return []
    if "NotPrincipal" in statement.body:
        return [f"{statement.where}: Allow with NotPrincipal lets every principal not listed assume the role"]
    principal = statement.body.get("Principal")
    if names_anyone(principal) and not narrows_principal(statement):
        return [
            f"{statement.where}: any principal ('*') may assume the role; name the principals, or narrow it with a "
            "condition on aws:PrincipalOrgID, aws:PrincipalAccount or aws:PrincipalArn"
        ]
    problems = [_web_identity_problem(statement, p) for p in principals(principal).get("Federated", [])]
    return [problem for problem in problems if problem]


def _trust(type_: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    return _document_problems("", "assumeRolePolicy", props.get("assumeRolePolicy"), _trust_statement_problems)


def _resource_statement_problems(statement: Statement, _label: str) -> list[str]:
    if not statement.allows:
        return []
    if "NotPrincipal" in statement.body:
        return [f"{statement.where}: Allow with NotPrincipal lets in every principal not listed"]
    if names_anyone(statement.body.get("Principal")) and not narrows_principal(statement):
        actions = strings(statement.body.get("Action")) or ["(NotAction)"]
        return [
            f"{statement.where}: allows {actions} to any principal ('*'), in any account; name the principals, or "
            "narrow it with a condition on aws:PrincipalOrgID, aws:PrincipalAccount, aws:PrincipalArn, "
            "aws:SourceArn or aws:SourceVpce"
        ]
    return []


def _resource_policy(type_: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    return _document_problems("", "policy", props.get("policy"), _resource_statement_problems)


IAM_NO_WILDCARDS = ResourceRule(
    name="aws-iam-policy-disallow-wildcards",
    description="IAM policy documents (inline in a role, or a policy of their own) grant no wildcard actions beyond "
    "reading ('*', 's3:*', 's3:*Object', 'iam:Pass*') and no wildcard resources ('*', 'arn:aws:s3:::*', a whole "
    "bucket, every role or user of the account).",
    why="A training job's role reads its inputs and writes its own prefixes; a wildcard lets one job "
    "read or overwrite every team's checkpoints and models, or pass itself an administrator's role.",
    resource_types=POLICY_DOCUMENT_TYPES | {ROLE_TYPE},
    check=_no_wildcards,
)
IAM_NO_ADMIN_POLICIES = ResourceRule(
    name="aws-iam-managed-policy-disallow-admin-access",
    description="No role, user or group is attached an AWS-managed administrator policy (AdministratorAccess, "
    "PowerUserAccess, IAMFullAccess, AmazonS3FullAccess, ...).",
    why="One leaked pod or CI credential holding such a policy owns the account, or every team's data.",
    resource_types=frozenset(ATTACHMENT_TYPES),
    check=_admin_policies,
)
IAM_TRUST_NAMES_PRINCIPALS = ResourceRule(
    name="aws-iam-role-trust-disallow-any-principal",
    description="Role trust policies name who may assume the role: no '*' principal without a condition narrowing "
    "it to an account, organisation or ARN; web-identity (OIDC) trust requires the token's subject.",
    why="A role anyone can assume, or any GitHub repository or ServiceAccount of the provider, hands its permissions "
    "to strangers.",
    resource_types=frozenset({ROLE_TYPE}),
    check=_trust,
)
RESOURCE_POLICY_NAMES_PRINCIPALS = ResourceRule(
    name="aws-iam-resource-policy-disallow-any-principal",
    description="Resource policies (bucket, KMS key, queue, topic, ECR, secret) allow no '*' principal without a "
    "condition narrowing it to an account, organisation, ARN or VPC endpoint.",
    why="A resource policy open to '*' lets any AWS account read the data or use the key, whatever IAM says.",
    resource_types=RESOURCE_POLICY_TYPES,
    check=_resource_policy,
)

RULES: list[Rule] = [
    IAM_NO_WILDCARDS,
    IAM_NO_ADMIN_POLICIES,
    IAM_TRUST_NAMES_PRINCIPALS,
    RESOURCE_POLICY_NAMES_PRINCIPALS,
]
