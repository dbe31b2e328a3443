from __future__ import annotations

from typing import Any

import pytest

from modelplane.config import ConfigError, EnvironmentConfig, parse_environment


def sections(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "cluster": {"deployer_cidrs": ["10.8.0.0/22"]},
        "gpu_node_pools": [{"name": "gpu-small", "instance_type": "g6.xlarge", "max_size": 2}],
        "budget": {"max_gpus": 8, "max_monthly_gpu_cost_usd": 10_000},
    }
    base.update(overrides)
    return base


def problems_of(raw: dict[str, Any], region: str | None = "us-east-1") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_environment("dev", region, raw)
    return caught.value.problems


def test_valid_config_parses_with_secure_defaults() -> None:
    env = parse_environment("dev", "us-east-1", sections())
    assert isinstance(env, EnvironmentConfig)
    assert env.cluster.endpoint_access == "private"
    assert env.network.nat_gateways == "per_az"
    assert env.storage.force_destroy is False
    assert set(env.cluster.control_plane_logging) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    assert env.gpu_pool("gpu-small").instance_type == "g6.xlarge"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            sections(
                gpu_node_pools=[{"name": "a", "instance_type": "g6.xlarge"}, {"name": "b", "instance_type": "p9.huge"}]
            ),
            "gpu_node_pools[1].instance_type='p9.huge': unknown GPU instance type 'p9.huge'; known: g5.12xlarge",
        ),
        (sections(gpu_node_pools=[{"name": "Bad_Name"}]), "gpu_node_pools[0].name='Bad_Name': must be a DNS label"),
        (
            sections(gpu_node_pools=[{"name": "a", "min_size": 3, "max_size": 1}]),
            "gpu_node_pools[0].max_size=1: must be at least min_size (3)",
        ),
        (
            sections(gpu_node_pools=[{"name": "a", "min_size": 0, "max_size": 2, "desired_size": 5}]),
            "gpu_node_pools[0].desired_size=5: must lie within min_size..max_size (0..2)",
        ),
        (
            sections(gpu_node_pools=[{"name": "a", "instance_type": "g6.xlarge", "efa": True}]),
            "gpu_node_pools[0].efa=True: g6.xlarge has no EFA; use one of",
        ),
        (
            sections(gpu_node_pools=[{"name": "a", "instance_type": "p5.48xlarge", "capacity_type": "CAPACITY_BLOCK"}]),
            "gpu_node_pools[0].capacity_reservation_id=None: CAPACITY_BLOCK needs",
        ),
        (
            sections(gpu_node_pools=[{"name": "a", "capacity_reservation_id": "cr-0123456789abcdef0"}]),
            "only with CAPACITY_BLOCK",
        ),
        (
            sections(
                gpu_node_pools=[
                    {
                        "name": "a",
                        "instance_type": "p5.48xlarge",
                        "capacity_type": "CAPACITY_BLOCK",
                        "capacity_reservation_id": "nope",
                    }
                ]
            ),
            "capacity_reservation_id='nope': expected 'cr-'",
        ),
        (sections(gpu_node_pools=[{"name": "a"}, {"name": "a"}]), "gpu_node_pools[1].name='a': already used"),
        (
            sections(gpu_node_pools=[{"name": "a", "capacity_type": "RESERVED"}]),
            "gpu_node_pools[0].capacity_type='RESERVED'",
        ),
        (sections(network={"cidr": "10.0.0.0/8"}), "network.cidr='10.0.0.0/8': prefix must be /16 to /20"),
        (sections(network={"cidr": "not-a-cidr"}), "network.cidr='not-a-cidr': not an IPv4 network"),
        (sections(network={"az_count": 1}), "network.az_count=1:"),
        (sections(network={"nat_gateways": "none"}), "network.nat_gateways='none'"),
        (sections(cluster={"kubernetes_version": "1.20"}), "kubernetes_version='1.20': older than the calendar"),
        (
            sections(cluster={"endpoint_access": "public_and_private"}),
            "cluster.public_access_cidrs=[]: a public endpoint",
        ),
        (
            sections(cluster={"endpoint_access": "public_and_private", "public_access_cidrs": ["0.0.0.0/0"]}),
            "opens the API server to the internet",
        ),
        (sections(cluster={"control_plane_logging": ["api", "everything"]}), "unknown log types ['everything']"),
        (sections(cluster={"admin_role_arns": ["admin"]}), "'admin' is not an IAM role ARN"),
        (sections(system_node_pool={"min_size": 3, "max_size": 2}), "system_node_pool.max_size=2: must be at least"),
        (sections(storage={"fsx": {"storage_capacity_gib": 1000}}), "storage.fsx.storage_capacity_gib=1000"),
        (sections(storage={"fsx": {"throughput_per_tib": 300}}), "storage.fsx.throughput_per_tib=300"),
        (
            sections(registries={"repositories": ["Trainer"]}),
            "registries.repositories[0]='Trainer': not a valid ECR repository name",
        ),
        (
            sections(registries={"repositories": ["a", "a"]}),
            "registries.repositories=['a', 'a']: a listed twice; names must be unique",
        ),
        (
            sections(budget={"max_gpus": 1, "max_monthly_gpu_cost_usd": 10_000}),
            "budget.max_gpus=1: the GPU pools reach 2",
        ),
        (sections(budget={"max_gpus": 8, "max_monthly_gpu_cost_usd": 100}), "budget.max_monthly_gpu_cost_usd=100"),
        ({"gpu_node_pools": []}, "budget: required; set modelplane:budget"),
        (sections(clutser={}), "clutser: unknown key"),
        (sections(gpu_node_pools=[{"name": "a", "usd_per_hour": -1}]), "gpu_node_pools[0].usd_per_hour=-1"),
    ],
)
def test_each_rule_names_path_value_and_fix(raw: dict[str, Any], expected: str) -> None:
    problems = problems_of(raw)
    assert any(expected in p for p in problems), problems


def test_missing_region_is_reported() -> None:
    assert any(p.startswith("aws:region: required") for p in problems_of(sections(), region=None))


def test_every_problem_is_listed_at_once() -> None:
    raw = sections(
        network={"cidr": "10.0.0.0/8"},
        cluster={"kubernetes_version": "0.1", "deployer_cidrs": ["10.8.0.0/22"]},
        gpu_node_pools=[
            {"name": "ok", "instance_type": "g6.xlarge", "min_size": 3, "max_size": 1},
            {"name": "bad", "instance_type": "p9.huge"},
        ],
    )
    problems = problems_of(raw)
    joined = "\n".join(problems)
    assert "network.cidr" in joined
    assert "cluster.kubernetes_version" in joined
    assert "gpu_node_pools[0].max_size=1" in joined
    assert "gpu_node_pools[1].instance_type='p9.huge'" in joined
    # An on-demand pool scales from zero with Karpenter: a minimum of 3 is a problem of its own.
    assert "gpu_node_pools[0].min_size=3: ON_DEMAND pools scale from zero" in joined
    assert len(problems) == 5


def test_config_error_message_lists_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_environment("prod", "us-east-1", sections(network={"az_count": 9}))
    # Prod also requires a critical receiver: every problem is reported at once.
    assert str(caught.value).startswith(
        "environment 'prod': 2 config problem(s):\n  - network.az_count=9: must be 2 to 6"
    )


def test_unknown_pool_lookup_names_known_pools() -> None:
    env = parse_environment("dev", "us-east-1", sections())
    with pytest.raises(KeyError, match="pools: gpu-small"):
        env.gpu_pool("missing")


def test_prod_needs_a_receiver_for_critical_alerts() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_environment("prod", "us-east-1", sections())
    assert any("no receiver takes 'critical' alerts" in p for p in caught.value.problems)
    receivers = [{"name": "oncall", "kind": "pagerduty", "secret": "pagerduty_routing_key"}]
    env = parse_environment("prod", "us-east-1", sections(monitoring={"receivers": receivers}))
    assert env.monitoring.secret_keys() == ["grafana_admin_password", "pagerduty_routing_key"]


@pytest.mark.parametrize(
    ("monitoring", "expected"),
    [
        (
            {"prometheus_retention": "two weeks"},
            "monitoring.prometheus_retention='two weeks': not a Prometheus duration",
        ),
        (
            {"receivers": [{"name": "a", "kind": "email", "secret": "x"}]},
            "monitoring.receivers[0].kind='email'",
        ),
        (
            {"receivers": [{"name": "a", "kind": "slack", "secret": "x", "severities": ["page"]}]},
            "monitoring.receivers[0].severities=['page']: use one or more of critical, warning, info",
        ),
        (
            {"receivers": [{"name": "a", "kind": "webhook", "secret": "x", "channel": "#c"}]},
            "monitoring.receivers[0].channel='#c': only Slack receivers take a channel",
        ),
        (
            {"receivers": [{"name": "a", "kind": "webhook", "secret": "budget"}]},
            "monitoring.receivers[0].secret='budget': names a config section; use a key of its own",
        ),
        (
            {
                "receivers": [
                    {"name": "a", "kind": "webhook", "secret": "x"},
                    {"name": "a", "kind": "slack", "secret": "y"},
                ]
            },
            "monitoring.receivers: names ['a'] are repeated; give each receiver its own name",
        ),
    ],
)
def test_monitoring_rules(monitoring: dict[str, Any], expected: str) -> None:
    problems = problems_of(sections(monitoring=monitoring))
    assert any(expected in p for p in problems), problems


def test_built_images_take_the_tag_their_workloads_name_and_must_agree_on_it() -> None:
    from pathlib import Path

    from modelplane.config import ImagesConfig, built_image_tags
    from modelplane.stack_config import read_stack_file

    stack = read_stack_file("dev", Path(__file__).resolve().parents[2] / "stacks")
    env = parse_environment("dev", stack.region, stack.sections())
    assert built_image_tags(env) == {"trainer": "0.1.0", "server": "0.1.0"}
    assert built_image_tags(env.model_copy(update={"images": ImagesConfig(build=False)})) == {}

    second = {**stack.sections()["training_jobs"][0], "name": "sentiment-v2", "image": "trainer:0.2.0"}
    raw = {**stack.sections(), "training_jobs": [stack.sections()["training_jobs"][0], second]}
    with pytest.raises(ConfigError) as caught:
        parse_environment("dev", stack.region, raw)
    assert (
        "training_jobs[1].image='trainer:0.2.0': images.build makes one trainer image from this checkout, tagged "
        "'0.1.0' by training_jobs[0].image" in caught.value.problems[0]
    )
