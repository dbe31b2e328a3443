from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplane.config import ConfigError
from modelplane.stack_config import SECRET_PLACEHOLDER, environment_from_stack_file, read_stack_file

STACKS = Path(__file__).resolve().parents[2] / "stacks"


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_shipped_stacks_are_valid(environment: str) -> None:
    env = environment_from_stack_file(read_stack_file(environment, STACKS))
    assert env.name == environment
    assert env.gpu_node_pools


def test_prod_is_private_with_nat_per_az_and_efa_training() -> None:
    env = environment_from_stack_file(read_stack_file("prod", STACKS))
    assert env.cluster.endpoint_access == "private"
    assert env.network.nat_gateways == "per_az"
    assert any(p.instance_type == "p5.48xlarge" and p.efa for p in env.gpu_node_pools)
    assert any(p.instance_type.startswith("g6e") for p in env.gpu_node_pools)


def test_dev_has_one_small_spot_pool() -> None:
    env = environment_from_stack_file(read_stack_file("dev", STACKS))
    (pool,) = env.gpu_node_pools
    assert (pool.instance_type, pool.capacity_type, pool.min_size, pool.max_size) == ("g6.xlarge", "SPOT", 0, 2)


def test_engine_config_is_strings_with_objects_as_json(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text(
        "config:\n  aws:region: eu-west-1\n  modelplane:budget:\n    max_gpus: 1\n"
        "    max_monthly_gpu_cost_usd: 5\n  modelplane:tags:\n    secret_thing:\n      secure: v1:abc\n"
    )
    stack = read_stack_file("x", tmp_path)
    config = stack.engine_config()
    assert config["aws:region"] == "eu-west-1"
    assert json.loads(config["modelplane:budget"]) == {"max_gpus": 1, "max_monthly_gpu_cost_usd": 5}
    assert stack.region == "eu-west-1"


def test_secure_values_become_placeholders(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text("config:\n  aws:region: eu-west-1\n  other:token:\n    secure: v1:abc\n")
    stack = read_stack_file("x", tmp_path)
    assert stack.values["other:token"] == SECRET_PLACEHOLDER
    assert stack.secret_keys == ["other:token"]


def test_missing_stack_file_lists_environments(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    with pytest.raises(ConfigError, match="no such stack file; environments: dev"):
        read_stack_file("qa", tmp_path)


def test_unknown_modelplane_key_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text("config:\n  modelplane:gpu_pools: []\n")
    with pytest.raises(ConfigError, match="modelplane:gpu_pools: unknown config key"):
        environment_from_stack_file(read_stack_file("x", tmp_path))


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text("config: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_stack_file("x", tmp_path)
