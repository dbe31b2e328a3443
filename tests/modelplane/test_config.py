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


JOB = {
    "name": "sentiment",
    "image": "trainer:0.1.0",
    "gpu_pool": "gpu-small",
    "base_model": "base-models/minilm-l6",
    "dataset": "datasets/news/train.jsonl",
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (sections(budget={"max_gpus": "8", "max_monthly_gpu_cost_usd": 1}), "budget.max_gpus='8': must be a whole"),
        (sections(network={"az_count": 2.0}), "network.az_count=2.0: must be a whole number"),
        (sections(storage={"force_destroy": "false"}), "storage.force_destroy='false': must be true or false"),
        (sections(cluster={"kubernetes_version": 1.3}), 'quote the value as meant, e.g. kubernetes_version: "1.30"'),
        (sections(tags={"cost_center": 1234}), "tags.cost_center=1234: must be text; YAML read an unquoted number"),
    ],
)
def test_values_are_never_coerced(raw: dict[str, Any], expected: str) -> None:
    problems = problems_of(raw)
    assert any(expected in p for p in problems), problems


def test_one_problem_of_a_job_hides_none_of_its_others() -> None:
    job = {**JOB, "image": "trainer:latest", "gpu_pool": "gpu-large", "nodes": 2}
    problems = problems_of(sections(training_jobs=[job]))
    assert [p.split(":")[0] for p in problems] == [
        "training_jobs[0].image='trainer",
        "training_jobs[0].gpu_pool='gpu-large'",
        "training_jobs[0].checkpoint_path=None",
    ]


def test_budgets_are_checked_beside_every_other_problem() -> None:
    pools = [
        {"name": "gpu-small", "instance_type": "g6.xlarge", "max_size": 2},
        {"name": "gpu-new", "instance_type": "p9.huge"},
    ]
    raw = sections(gpu_node_pools=pools, network={"az_count": 1}, budget={"max_gpus": 1, "max_monthly_gpu_cost_usd": 1})
    problems = problems_of(raw)
    assert "network.az_count=1: must be 2 to 6" in problems
    assert any(p.startswith("gpu_node_pools[1].instance_type='p9.huge'") for p in problems)
    assert any(p.startswith("budget.max_gpus=1: the GPU pools reach 2 GPUs") for p in problems)
    assert any(p.startswith("budget.max_monthly_gpu_cost_usd=1.0: the GPU pools cost up to") for p in problems)


def test_a_wrong_value_is_reported_once_not_again_by_the_checks_that_read_it() -> None:
    # The job's image is wrong: the registry check on it would repeat the problem; the pool check still runs.
    problems = problems_of(sections(training_jobs=[{**JOB, "image": "elsewhere/trainer:latest"}]))
    assert len([p for p in problems if p.startswith("training_jobs[0].image")]) == 1, problems


def test_an_unparseable_budget_still_lets_everything_else_be_checked() -> None:
    problems = problems_of(sections(budget={"max_gpus": "lots"}, network={"az_count": 1}))
    assert problems == [
        "budget.max_gpus='lots': must be a whole number",
        "budget.max_monthly_gpu_cost_usd: required; add it",
        "network.az_count=1: must be 2 to 6",
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Dev2", "environment name 'Dev2': must be at most 15 characters"),
        ("abcdefghijklmnop", "artifact bucket 'modelplane-abcdefghijklmnop-artifacts-'"),
        ("2dev", "environment name '2dev'"),
        ("dev_2", "environment name 'dev_2'"),
    ],
)
def test_environment_names_fit_the_names_built_from_them(name: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_environment(name, "us-east-1", sections())
    assert any(expected in p for p in caught.value.problems), caught.value.problems


def test_the_longest_environment_name_builds_a_valid_bucket_prefix() -> None:
    from modelplane.components.artifact_store import check_bucket_prefix
    from modelplane.terms.names import ENVIRONMENT_NAME_MAX, artifact_bucket_prefix

    longest = "e" * ENVIRONMENT_NAME_MAX
    parse_environment(longest, "us-east-1", sections())
    check_bucket_prefix(artifact_bucket_prefix(longest))
    with pytest.raises(ValueError):
        check_bucket_prefix(artifact_bucket_prefix(longest + "e"))


@pytest.mark.parametrize(
    ("region", "instance_type", "expected"),
    [
        ("mars-north-1", "m7i.xlarge", "aws:region='mars-north-1': not an AWS region"),
        ("us-east1", "m7i.xlarge", "did you mean us-east-1"),
        ("us-gov-west-1", "m7i.gigantic", "system_node_pool.instance_type='m7i.gigantic': not an EC2 instance type"),
        ("eu-west-1", "c7g.large", "system_node_pool.instance_type='c7g.large': an arm64 type"),
    ],
)
def test_region_and_system_instance_type_exist(region: str, instance_type: str, expected: str) -> None:
    problems = problems_of(sections(system_node_pool={"instance_type": instance_type}), region=region)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (
            {"note": "x" * 5000},
            "tags['note']='xxxxxxxxxxxxxxxxxxxx'...: a tag value is at most 256 characters (got 5000)",
        ),
        ({"k" * 129: "v"}, "tags['kkkkkkkkkkkkkkkkkkkk'...]: a tag key must be 1 to 128 characters (got 129)"),
        ({"": "v"}, "tags['']: a tag key must be 1 to 128 characters (got 0)"),
        ({"AWS:owner": "me"}, "tags['AWS:owner']: keys starting with 'aws:' are reserved for AWS"),
        ({"team": "a;b"}, "tags['team']='a;b': use only letters, digits, spaces and _ . : / = + - @"),
        ({"managed-by": "me"}, "tags['managed-by']: modelplane sets this tag"),
        ({f"t{i}": "v" for i in range(41)}, "tags: 41 tags; AWS allows 50 per resource"),
    ],
)
def test_tags_follow_aws_rules(tags: dict[str, str], expected: str) -> None:
    problems = problems_of(sections(tags=tags))
    assert problems == [expected] or any(p.startswith(expected) for p in problems), problems


def test_a_bad_value_is_shown_short() -> None:
    (problem,) = problems_of(sections(network={"cidr": "1" * 500}))
    assert len(problem) < 250 and problem.startswith(f"network.cidr='{'1' * 60}...': not an IPv4 network"), problem


def test_runbook_links_follow_the_configured_base() -> None:
    from modelplane.platform import platform_rule_groups

    env = parse_environment("dev", "us-east-1", sections(monitoring={"runbook_base_url": "https://wiki.example/rb/"}))
    urls = {alert.runbook_url for group in platform_rule_groups(env) for alert in group.alerts}
    assert "https://wiki.example/rb/GpuXidError.md" in urls
    assert all(url.startswith("https://wiki.example/rb/") for url in urls)
    assert problems_of(sections(monitoring={"runbook_base_url": "runbooks"})) == [
        "monitoring.runbook_base_url='runbooks': must be an http(s) URL the runbook pages sit under, e.g. "
        "'https://github.com/modelplane/modelplane/blob/main/docs/runbooks'"
    ]
