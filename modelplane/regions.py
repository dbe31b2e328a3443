"""AWS regions a config may name: every region of every partition botocore knows, read offline from its endpoint
data (commercial, China, GovCloud, ...)."""

from __future__ import annotations

from functools import cache

from botocore.loaders import create_loader

from modelplane.terms.aws import did_you_mean


@cache
def aws_regions() -> frozenset[str]:
    endpoints = create_loader().load_data("endpoints")
    return frozenset(region for partition in endpoints["partitions"] for region in partition["regions"])


def region_problems(at: str, region: object) -> list[str]:
    """A region AWS has: a typo (`us-east1`) or an invented one fails at deploy, after the plan said yes."""
    if isinstance(region, str) and region in aws_regions():
        return []
    hint = did_you_mean(region, sorted(aws_regions())) if isinstance(region, str) else ""
    return [f"{at}={region!r}: not an AWS region{hint or '; e.g. us-east-1, eu-west-1'}"]
