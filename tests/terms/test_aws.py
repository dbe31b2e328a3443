from __future__ import annotations

import gzip
import json
from pathlib import Path

import moto

from modelplane.terms.aws import (
    INSTANCE_TYPES_FILE,
    ec2_instance_types,
    instance_type_problems,
    tag_problems,
)

MOTO_INSTANCE_TYPES = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"


def test_the_vendored_table_matches_ec2s_data_as_moto_ships_it() -> None:
    """Regenerate `ec2_instance_types.json` from moto's copy when this fails after a moto upgrade."""
    ec2 = json.loads(gzip.decompress(MOTO_INSTANCE_TYPES.read_bytes()))
    vendored = ec2_instance_types()
    assert "moto" in json.loads(INSTANCE_TYPES_FILE.read_text())["source"]
    assert set(vendored) <= set(ec2), sorted(set(vendored) - set(ec2))[:5]
    for name, row in vendored.items():
        source = ec2[name]
        assert row.vcpus == source["VCpuInfo"]["DefaultVCpus"], name
        assert row.memory_mib == source["MemoryInfo"]["SizeInMiB"], name
        assert set(row.architectures) == set(source["ProcessorInfo"]["SupportedArchitectures"]), name
        assert row.gpus == sum(gpu.get("Count", 0) for gpu in source.get("GpuInfo", {}).get("Gpus", [])), name
    assert len(vendored) > 1000


def test_instance_types_name_the_family_sizes_or_the_nearest_types() -> None:
    assert instance_type_problems("t", "m7i.xlarge") == []
    (wrong_size,) = instance_type_problems("t", "m7i.gigantic")
    assert "m7i comes in large, xlarge, 2xlarge, 4xlarge" in wrong_size
    (wrong_family,) = instance_type_problems("t", "m7x.large")
    assert "did you mean" in wrong_family


def test_tags_within_the_rules_pass() -> None:
    assert tag_problems("tags", {"team": "ml platform", "cost-center": "1234", "owner": "a.b@example.com"}) == []
    assert tag_problems("tags", {"note": "x" * 256, "k" * 128: "v"}) == []
