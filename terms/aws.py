"""AWS facts a config is checked against before anything deploys: EC2 instance types and tag rules (regions, which
need botocore's endpoint data, are `modelplane.regions`: the containers copy this layer and carry no botocore).

Instance types come from `ec2_instance_types.json`, a table vendored from EC2's DescribeInstanceTypes (its `source` says
which copy); `tests/terms/test_aws.py` checks it against moto's copy of the same data.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

INSTANCE_TYPES_FILE = Path(__file__).with_name("ec2_instance_types.json")

TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
TAGS_PER_RESOURCE_MAX = 50
"""AWS's limit per resource; the platform, EKS and Karpenter add up to TAGS_ADDED_MAX of their own."""
TAGS_ADDED_MAX = 10
RESERVED_TAG_PREFIX = "aws:"
# Letters, digits, spaces and _ . : / = + - @ (the set every taggable service accepts).
_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")


@dataclass(frozen=True)
class Ec2InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    architectures: tuple[str, ...]
    gpus: int


@cache
def ec2_instance_types() -> dict[str, Ec2InstanceType]:
    table = json.loads(INSTANCE_TYPES_FILE.read_text())["instance_types"]
    return {
        name: Ec2InstanceType(name, row["vcpus"], row["memory_mib"], tuple(row["architectures"]), row["gpus"])
        for name, row in table.items()
    }


def did_you_mean(value: str, known: list[str]) -> str:
    """'; did you mean X, Y?' for the names in `known` closest to `value`, or ''."""
    matches = difflib.get_close_matches(value, known, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


def instance_type_problems(at: str, instance_type: str) -> list[str]:
    """An EC2 instance type that exists."""
    if instance_type in ec2_instance_types():
        return []
    family, _, _ = instance_type.partition(".")
    sizes = [name.partition(".")[2] for name in ec2_instance_types() if name.partition(".")[0] == family]
    if sizes:
        hint = f"; {family} comes in {', '.join(sorted(sizes, key=_size_order))}"
    else:
        hint = did_you_mean(instance_type, sorted(ec2_instance_types())) or "; e.g. m7i.xlarge"
    return [f"{at}={instance_type!r}: not an EC2 instance type{hint}"]


def _size_order(size: str) -> tuple[int, str]:
    """`large` < `xlarge` < `2xlarge` < ... < `metal`, as AWS lists them."""
    named = {"nano": 0, "micro": 1, "small": 2, "medium": 3, "large": 4, "xlarge": 5}
    if size in named:
        return named[size], size
    multiple = re.match(r"^(\d+)xlarge$", size)
    return (5 + int(multiple.group(1)), size) if multiple else (10_000, size)


def tag_problems(at: str, tags: Mapping[str, str]) -> list[str]:
    """AWS's tag rules, which every taggable resource enforces at create time."""
    problems = []
    room = TAGS_PER_RESOURCE_MAX - TAGS_ADDED_MAX
    if len(tags) > room:
        problems.append(
            f"{at}: {len(tags)} tags; AWS allows {TAGS_PER_RESOURCE_MAX} per resource and the platform, EKS and "
            f"Karpenter add up to {TAGS_ADDED_MAX}: keep at most {room}"
        )
    for key, value in tags.items():
        if not 1 <= len(key) <= TAG_KEY_MAX:
            shown = repr(key) if len(key) <= 40 else f"{key[:20]!r}..."
            problems.append(f"{at}[{shown}]: a tag key must be 1 to {TAG_KEY_MAX} characters (got {len(key)})")
        elif key.lower().startswith(RESERVED_TAG_PREFIX):
            problems.append(f"{at}[{key!r}]: keys starting with 'aws:' are reserved for AWS; rename the key")
        elif not _TAG_TEXT.match(key):
            problems.append(f"{at}[{key!r}]: use only letters, digits, spaces and _ . : / = + - @ in a tag key")
        if not isinstance(value, str):
            continue
        if len(value) > TAG_VALUE_MAX:
            problems.append(
                f"{at}[{key!r}]={value[:20]!r}...: a tag value is at most {TAG_VALUE_MAX} characters (got "
                f"{len(value)}); shorten it"
            )
        elif not _TAG_TEXT.match(value):
            problems.append(
                f"{at}[{key!r}]={value!r}: use only letters, digits, spaces and _ . : / = + - @ in a tag value"
            )
    return problems
