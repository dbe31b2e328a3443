"""Regions a config may name, from botocore's offline endpoint data."""

from __future__ import annotations

import pytest

from modelplane.regions import aws_regions, region_problems


def test_regions_come_from_botocores_endpoints_of_every_partition() -> None:
    assert {"us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1"} <= aws_regions()
    assert "mars-north-1" not in aws_regions()


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("us-east-1", []),
        ("eu-wset-1", ["aws:region='eu-wset-1': not an AWS region; did you mean eu-west-1"]),
        ("", ["aws:region='': not an AWS region; e.g. us-east-1, eu-west-1"]),
    ],
)
def test_region_problems(region: str, expected: list[str]) -> None:
    problems = region_problems("aws:region", region)
    assert len(problems) == len(expected) and all(p.startswith(e) for p, e in zip(problems, expected, strict=True))
