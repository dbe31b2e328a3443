import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from modelplane.components.alertmanager_config import (
    PAGERDUTY_SEVERITY,
    SLACK_TEXT,
    SLACK_TITLE,
    AlertReceiver,
    AlertRouting,
    ReceiverKind,
    alertmanager_config,
    alertmanager_yaml,
    check_receiver_secrets,
    routing_problems,
)

INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus-alertmanager"
SECRETS = {
    "pagerduty_key": "pd-routing-key",
    "slack_url": "https://hooks.slack.com/services/T/B/X",
    "hook_url": "https://hooks.example.com/alert",
}
ONCALL: AlertReceiver = {"name": "oncall", "kind": ReceiverKind.PAGERDUTY, "secret": "pagerduty_key"}
MONITORING: AlertRouting = {
    "receivers": [
        ONCALL,
        {
            "name": "ml-alerts",
            "kind": ReceiverKind.SLACK,
            "secret": "slack_url",
            "severities": ["critical", "warning"],
            "channel": "#ml",
        },
        {"name": "audit", "kind": ReceiverKind.WEBHOOK, "secret": "hook_url", "severities": ["info"]},
    ],
    "group_wait": "10s",
    "repeat_interval": "12h",
}


def receiver(config, name):
    return next(r for r in config["receivers"] if r["name"] == name)


def test_default_receiver_is_null_and_grouping_comes_from_config():
    route = alertmanager_config(MONITORING, SECRETS)["route"]
    assert route["receiver"] == "null"
    assert route["group_by"] == ["alertname", "namespace", "service", "job_name"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("10s", "5m", "12h")
    assert receiver(alertmanager_config(MONITORING, SECRETS), "null") == {"name": "null"}


def test_critical_reaches_every_receiver_taking_it_then_stops():
    routes = alertmanager_config(MONITORING, SECRETS)["route"]["routes"]
    assert routes[:2] == [
        {"receiver": "oncall", "matchers": ['severity="critical"'], "continue": True},
        {"receiver": "ml-alerts", "matchers": ['severity="critical"']},
    ]


def test_warning_and_info_go_only_to_their_receivers():
    routes = alertmanager_config(MONITORING, SECRETS)["route"]["routes"]
    assert routes[2:] == [
        {"receiver": "ml-alerts", "matchers": ['severity="warning"']},
        {"receiver": "audit", "matchers": ['severity="info"']},
    ]


def test_slack_receiver():
    assert receiver(alertmanager_config(MONITORING, SECRETS), "ml-alerts")["slack_configs"] == [
        {
            "api_url": SECRETS["slack_url"],
            "send_resolved": True,
            "title": SLACK_TITLE,
            "text": SLACK_TEXT,
            "channel": "#ml",
        }
    ]


def test_slack_without_channel_uses_the_webhooks_own():
    monitoring: AlertRouting = {"receivers": [{"name": "s", "kind": ReceiverKind.SLACK, "secret": "slack_url"}]}
    assert "channel" not in receiver(alertmanager_config(monitoring, SECRETS), "s")["slack_configs"][0]


def test_pagerduty_receiver_pages_with_the_alerts_severity():
    pagerduty = receiver(alertmanager_config(MONITORING, SECRETS), "oncall")["pagerduty_configs"][0]
    assert pagerduty["routing_key"] == "pd-routing-key"
    assert pagerduty["severity"] == PAGERDUTY_SEVERITY


def test_webhook_receiver():
    assert receiver(alertmanager_config(MONITORING, SECRETS), "audit")["webhook_configs"] == [
        {"url": "https://hooks.example.com/alert", "send_resolved": True}
    ]


def test_critical_inhibits_warnings_of_the_same_alert_and_object():
    assert alertmanager_config(MONITORING, SECRETS)["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "namespace", "service", "job_name"],
        }
    ]


def test_no_receivers_sends_nothing():
    config = alertmanager_config({}, {})
    assert config["route"]["routes"] == []
    assert config["receivers"] == [{"name": "null"}]


def test_missing_secret_names_the_receiver_and_the_fix():
    secrets = {k: v for k, v in SECRETS.items() if k != "slack_url"}
    with pytest.raises(ValueError, match=r"^receiver 'ml-alerts': secret 'slack_url' is not set; set it with "):
        alertmanager_config(MONITORING, secrets)


def test_empty_secret_is_refused():
    with pytest.raises(ValueError, match=r"^receiver 'oncall': secret 'pagerduty_key' is empty"):
        alertmanager_config(MONITORING, {**SECRETS, "pagerduty_key": ""})


def test_check_receiver_secrets_lists_every_missing_one():
    with pytest.raises(
        ValueError, match=r"^receiver_secrets: no value for secret 'pagerduty_key' of receiver 'oncall', "
    ):
        check_receiver_secrets(MONITORING, {"slack_url"})
    check_receiver_secrets(MONITORING, set(SECRETS))


def test_repeated_or_reserved_receiver_names_are_refused():
    twice: AlertReceiver = {"name": "oncall", "kind": ReceiverKind.WEBHOOK, "secret": "hook_url"}
    with pytest.raises(ValueError, match=r"names \['oncall'\] are repeated"):
        alertmanager_config({"receivers": [*MONITORING["receivers"], twice]}, SECRETS)
    null: AlertReceiver = {"name": "null", "kind": ReceiverKind.WEBHOOK, "secret": "hook_url"}
    with pytest.raises(ValueError, match=r"'null' is reserved"):
        alertmanager_config({"receivers": [null]}, SECRETS)


@pytest.mark.parametrize(
    ("receiver", "problem"),
    [
        ({**ONCALL, "name": "On Call"}, r"receivers\[0\]\.name='On Call': must be a DNS label"),
        ({**ONCALL, "kind": "email"}, r"receivers\[0\]\.kind='email': use one of slack, pagerduty, webhook"),
        ({**ONCALL, "secret": "Key"}, r"receivers\[0\]\.secret='Key': must be a snake_case config key"),
        ({**ONCALL, "severities": []}, r"receivers\[0\]\.severities=\[\]: use one or more of"),
        ({**ONCALL, "channel": "#ml"}, r"receivers\[0\]\.channel='#ml': only Slack receivers take a channel"),
    ],
)
def test_routing_problems_name_the_receiver_field(receiver: AlertReceiver, problem: str):
    problems = routing_problems("monitoring", {"receivers": [receiver]})
    assert len(problems) == 1
    assert re.match(rf"^monitoring\.{problem}", problems[0])
    assert routing_problems("monitoring", MONITORING) == []


def test_routing_durations_are_checked():
    assert routing_problems("monitoring", {"group_wait": "soon"}) == [
        "monitoring.group_wait='soon': not a Prometheus duration; use e.g. '30s', '5m', '4h'"
    ]


def test_yaml_round_trips():
    assert yaml.safe_load(alertmanager_yaml(MONITORING, SECRETS)) == alertmanager_config(MONITORING, SECRETS)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "alertmanager.yaml"
    path.write_text(alertmanager_yaml(MONITORING, SECRETS))
    return path


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("amtool")
    if binary is None:
        pytest.fail(f"amtool is not on PATH: install it with `{INSTALL_HINT}`")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def test_alertmanager_accepts_the_config(config_file):
    result = amtool("check-config", str(config_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("severity", "receivers"),
    [("critical", "oncall,ml-alerts"), ("warning", "ml-alerts"), ("info", "audit"), ("none", "null")],
)
def test_alertmanager_routes_each_severity(config_file, severity, receivers):
    result = amtool("config", "routes", "test", f"--config.file={config_file}", f"severity={severity}", "alertname=X")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receivers
