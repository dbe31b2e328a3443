"""Names and their limits: one rule per kind of name, each limit with the reason it has.

Every check returns the value unchanged or raises ValueError naming the input, the bad value and the fix.
"""

from __future__ import annotations

import re

KUBERNETES_NAME_MAX = 63
"""RFC 1123 label: namespaces, Services, label values."""
POOL_NAME_MAX = 32
"""A GPU pool's name is embedded in the node group, launch template and placement group names
(`modelplane-<env>-gpu-<pool>-...`), which AWS caps; 32 leaves room for the prefix and the suffix."""
WORKLOAD_NAME_MAX = 40
"""A workload's name is the prefix of its Kubernetes objects (`<name>-inference-canary`, `<name>-trainer`),
which must stay within 63 characters."""
S3_BUCKET_PREFIX_MAX = 37
"""AWS caps a bucket's name at 63 characters; the provider appends a 26-character unique suffix to a prefix."""

_LOWERCASE_LABEL = "lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _label_pattern(max_length: int, first: str) -> re.Pattern[str]:
    return re.compile(rf"^{first}([-a-z0-9]{{0,{max_length - 2}}}[a-z0-9])?$")


def is_dns_label(value: object, max_length: int = KUBERNETES_NAME_MAX) -> bool:
    """An RFC 1123 label of at most `max_length` characters."""
    return isinstance(value, str) and bool(_label_pattern(max_length, "[a-z0-9]").match(value))


def check_kubernetes_name(what: str, value: str) -> str:
    """`value` unchanged when it is a DNS-1123 label (so it can sit inside a PromQL string unescaped)."""
    if not is_dns_label(value):
        raise ValueError(
            f"{what}={value!r}: must be a Kubernetes name: lowercase letters, digits, '-', "
            f"at most {KUBERNETES_NAME_MAX}"
        )
    return value


def is_dns_subdomain(value: object) -> bool:
    """A DNS-1123 subdomain (StorageClass and claim names)."""
    return isinstance(value, str) and bool(_DNS_SUBDOMAIN.match(value))


def check_dns_subdomain(what: str, value: str) -> str:
    """`value` unchanged when it is a DNS-1123 subdomain (StorageClass and claim names)."""
    if not is_dns_subdomain(value):
        raise ValueError(f"{what}={value!r}: must be a DNS subdomain (lowercase letters, digits, '-', '.')")
    return value


def check_named_label(value: str, max_length: int) -> str:
    """A name modelplane builds other names from: a DNS label that starts with a letter, at most `max_length`."""
    if not isinstance(value, str) or not _label_pattern(max_length, "[a-z]").match(value):
        raise ValueError(f"must be a DNS label of at most {max_length} characters: {_LOWERCASE_LABEL}")
    return value


def check_pool_name(value: str) -> str:
    """A GPU pool's name (see POOL_NAME_MAX)."""
    return check_named_label(value, POOL_NAME_MAX)


def check_workload_name(value: str) -> str:
    """A training job's or inference service's name (see WORKLOAD_NAME_MAX)."""
    return check_named_label(value, WORKLOAD_NAME_MAX)


def cluster_name(environment: str) -> str:
    """The EKS cluster's name, which prefixes the environment's AWS and Kubernetes names."""
    return f"modelplane-{environment}"


def artifact_bucket_prefix(environment: str) -> str:
    """The artifact bucket's name prefix: the longest AWS name built from the environment's name."""
    return f"{cluster_name(environment)}-artifacts-"


ENVIRONMENT_TAG = "modelplane:environment"
MANAGED_BY_TAG = "managed-by"
NAME_TAG = "Name"
PLATFORM_TAG_KEYS = (ENVIRONMENT_TAG, MANAGED_BY_TAG, NAME_TAG)
"""Tags modelplane sets on what it creates; an environment's own tags must not redefine them."""

ENVIRONMENT_NAME_MAX = S3_BUCKET_PREFIX_MAX - len(artifact_bucket_prefix(""))
"""An environment's (stack's) name sits in the artifact bucket's prefix, which S3_BUCKET_PREFIX_MAX caps."""


def check_environment_name(value: str) -> str:
    """An environment's name (the Pulumi stack's): it builds the cluster's, the bucket's and the tags' names."""
    if not isinstance(value, str) or not _label_pattern(ENVIRONMENT_NAME_MAX, "[a-z]").match(value):
        raise ValueError(
            f"environment name {value!r}: must be at most {ENVIRONMENT_NAME_MAX} characters of {_LOWERCASE_LABEL} "
            f"(it names the artifact bucket {artifact_bucket_prefix(str(value))!r}..., which S3 caps at "
            f"{S3_BUCKET_PREFIX_MAX}); rename the stack file stacks/Pulumi.<name>.yaml"
        )
    return value
