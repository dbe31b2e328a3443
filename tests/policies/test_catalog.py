"""The catalog, the shipped policy config files and the README agree; the pack's files are in place."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from modelplane.plan.pack_config import reconcile
from modelplane.policies.rules.catalog import CONFIGS, RULES, level, markdown_table, pack_policies
from modelplane.policy_config import POLICY_PACK_DIR

README = Path(__file__).resolve().parents[2] / "README.md"
RULE_NAME = re.compile(r"^(aws|kubernetes|modelplane)(-[a-z0-9]+){3,}$")


def test_rule_names_are_unique_and_follow_the_compliance_packs_scheme() -> None:
    names = [rule.name for rule in RULES]
    assert len(set(names)) == len(names)
    assert [n for n in names if not RULE_NAME.match(n)] == []
    assert [p.name for p in pack_policies()] == names


@pytest.mark.parametrize("environment", CONFIGS)
def test_config_file_levels_are_the_catalogs(environment: str) -> None:
    config = json.loads((POLICY_PACK_DIR / "config" / f"{environment}.json").read_text())
    assert set(config) - {"all"} <= {rule.name for rule in RULES}, "config names a rule the pack lacks"
    settings = reconcile(pack_policies(), config)
    assert {rule.name: settings[rule.name].level for rule in RULES} == {
        rule.name: level(rule.name, environment) for rule in RULES
    }


@pytest.mark.parametrize("environment", CONFIGS)
def test_config_file_properties_are_in_each_rules_schema(environment: str) -> None:
    config = json.loads((POLICY_PACK_DIR / "config" / f"{environment}.json").read_text())
    schemas = {rule.name: set(rule.config_properties) for rule in RULES}
    for name, entry in config.items():
        if name != "all":
            assert set(entry) - {"enforcementLevel"} <= schemas[name], name


def test_pack_runs_on_the_projects_virtualenv() -> None:
    manifest = yaml.safe_load((POLICY_PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert (POLICY_PACK_DIR / manifest["runtime"]["options"]["virtualenv"] / "bin" / "python").exists()


def test_readme_holds_the_current_policy_table() -> None:
    assert markdown_table() in README.read_text(), (
        "README's policy table is stale: paste `python -m modelplane.policies.rules.catalog`"
    )


@pytest.mark.parametrize("environment", CONFIGS)
def test_shipped_config_is_what_the_engine_accepts(environment: str) -> None:
    config = json.loads((POLICY_PACK_DIR / "config" / f"{environment}.json").read_text())
    assert reconcile(pack_policies(), config)
