from __future__ import annotations

import json
import re
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


def _stack(tmp_path: Path, text: str | bytes, environment: str = "x") -> Path:
    path = tmp_path / f"Pulumi.{environment}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


VALID = (
    "config:\n  aws:region: eu-west-1\n  modelplane:cluster:\n    deployer_cidrs: [10.8.0.0/22]\n"
    "  modelplane:budget:\n    max_gpus: 1\n    max_monthly_gpu_cost_usd: 5\n"
)


def test_an_alias_bomb_is_refused_before_anything_is_expanded(tmp_path: Path) -> None:
    # Thirty levels of ten aliases: 10**30 values if expanded; counted per distinct node, l4 (line 5) passes the bound.
    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 30)]
    _stack(tmp_path, "\n".join(lines) + "\nconfig:\n  modelplane:tags: *l29\n")
    with pytest.raises(ConfigError) as caught:
        read_stack_file("x", tmp_path)
    (problem,) = caught.value.problems
    assert "Pulumi.x.yaml:5: YAML aliases here expand to more than 100,000 values" in problem


def test_aliases_within_the_bound_are_read_as_pulumi_reads_them(tmp_path: Path) -> None:
    _stack(tmp_path, VALID + "  modelplane:tags: &t {team: a}\n  other:tags: *t\n")
    stack = read_stack_file("x", tmp_path)
    assert stack.values["other:tags"] == {"team": "a"}


def test_repeated_keys_are_named_with_both_lines(tmp_path: Path) -> None:
    _stack(tmp_path, VALID + "  modelplane:budget:\n    max_gpus: 99\n    max_monthly_gpu_cost_usd: 1\n")
    with pytest.raises(ConfigError) as caught:
        read_stack_file("x", tmp_path)
    assert caught.value.problems == [
        f"{tmp_path}/Pulumi.x.yaml:8: key 'modelplane:budget' repeats the one on line 5; YAML forbids repeated keys "
        "(Pulumi would keep only the last): keep one"
    ]


def test_merge_keys_may_override_what_they_merge(tmp_path: Path) -> None:
    text = VALID + "  modelplane:tags:\n    <<: {team: a, owner: b}\n    team: c\n"
    env = environment_from_stack_file(read_stack_file("x", _stack(tmp_path, text).parent))
    assert env.tags == {"team": "c", "owner": "b"}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("- config: {}\n", "the file holds a list; a stack file is a mapping"),
        ("just words\n", "the file holds text ('just words')"),
        ("config: 5\n", "`config` holds a number (5); it must be a mapping"),
    ],
)
def test_a_stack_file_of_the_wrong_shape_says_what_it_holds(tmp_path: Path, document: str, expected: str) -> None:
    _stack(tmp_path, document)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        read_stack_file("x", tmp_path)


def test_non_utf8_bytes_are_named_by_line_and_column(tmp_path: Path) -> None:
    _stack(tmp_path, VALID.encode() + b"  modelplane:tags:\n    team: caf\xe9\n    ok: yes\n    b: \xff\n")
    with pytest.raises(ConfigError) as caught:
        read_stack_file("x", tmp_path)
    assert [p.split("Pulumi.x.yaml:")[1] for p in caught.value.problems] == [
        "9:14: byte 0xe9 is not UTF-8; save the file as UTF-8 (Pulumi reads nothing else)",
        "11:8: byte 0xff is not UTF-8; save the file as UTF-8 (Pulumi reads nothing else)",
    ]


def test_unquoted_dates_stay_text_so_the_engine_config_is_json(tmp_path: Path) -> None:
    stack = read_stack_file("x", _stack(tmp_path, VALID + "  modelplane:tags:\n    expires: 2030-01-01\n").parent)
    assert json.loads(stack.engine_config()["modelplane:tags"]) == {"expires": "2030-01-01"}


def test_secure_secrets_are_accepted_and_plaintext_ones_named(tmp_path: Path) -> None:
    receivers = (
        "  modelplane:monitoring:\n    receivers:\n      - {name: team, kind: slack, secret: slack_webhook_url}\n"
    )
    secure = VALID + receivers + "  modelplane:slack_webhook_url:\n    secure: v1:abc\n"
    env = environment_from_stack_file(read_stack_file("x", _stack(tmp_path, secure).parent))
    assert env.monitoring.secret_keys() == ["grafana_admin_password", "slack_webhook_url"]

    plain = VALID + receivers + "  modelplane:slack_webhook_url: https://hooks.slack.com/x\n"
    with pytest.raises(ConfigError) as caught:
        environment_from_stack_file(read_stack_file("x", _stack(tmp_path, plain).parent))
    (problem,) = caught.value.problems
    assert problem.startswith("modelplane:slack_webhook_url: a secret in plain text in Pulumi.x.yaml")
    assert "pulumi config set --secret modelplane:slack_webhook_url --stack x" in problem


def test_an_unknown_section_hides_no_other_problem(tmp_path: Path) -> None:
    text = VALID.replace("deployer_cidrs", "deployer_cidr") + "  modelplane:netwrok:\n    az_count: 2\n"
    with pytest.raises(ConfigError) as caught:
        environment_from_stack_file(read_stack_file("x", _stack(tmp_path, text).parent))
    assert caught.value.problems[:2] == [
        "modelplane:netwrok: unknown config key; did you mean modelplane:network?",
        "cluster.deployer_cidr: unknown key; did you mean 'deployer_cidrs'?",
    ]


def test_keys_without_a_namespace_and_unknown_top_level_keys_are_named(tmp_path: Path) -> None:
    _stack(tmp_path, "settings: {}\n" + VALID + "  tags: {team: a}\n")
    with pytest.raises(ConfigError) as caught:
        environment_from_stack_file(read_stack_file("x", tmp_path))
    assert [p.split("Pulumi.x.yaml: ")[1] for p in caught.value.problems] == [
        "top-level key 'settings' is not one Pulumi reads (config, secretsprovider, encryptedkey, encryptionsalt, "
        "environment); put environment settings under `config:`",
        "config key 'tags': Pulumi reads keys as <namespace>:<name>; write modelplane:tags",
    ]
