"""The catalog, the shipped policy config files and the README agree; the pack's files are in place."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from modelplane.plan.policy_check import enforcement_level
from modelplane.policies.rules.catalog import ENVIRONMENTS, RULES, level, markdown_table, pack_policies
from modelplane.policy_config import POLICY_PACK_DIR

README = Path(__file__).resolve().parents[2] / "README.md"
RULE_NAME = re.compile(r"^(aws|kubernetes|modelplane)(-[a-z0-9]+){3,}$")


def test_rule_names_are_unique_and_follow_the_compliance_packs_scheme() -> None:
    names = [rule.name for rule in RULES]
    assert len(set(names)) == len(names)
    assert [n for n in names if not RULE_NAME.match(n)] == []
    assert [p.name for p in pack_policies()] == names


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_config_file_levels_are_the_catalogs(environment: str) -> None:
    config = json.loads((POLICY_PACK_DIR / "config" / f"{environment}.json").read_text())
    assert set(config) - {"all"} <= {rule.name for rule in RULES}, "config names a rule the pack lacks"
    assert {rule.name: enforcement_level(config, rule.name) for rule in RULES} == {
        rule.name: level(rule.name, environment) for rule in RULES
    }


@pytest.mark.parametrize("environment", ENVIRONMENTS)
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


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_shipped_config_validates_against_the_rules_schemas(environment: str) -> None:
    """What the engine does with `--policy-pack-config`: each rule's properties against its JSON schema."""
    import jsonschema

    config = json.loads((POLICY_PACK_DIR / "config" / f"{environment}.json").read_text())
    checked = 0
    for rule in RULES:
        entry = config.get(rule.name)
        if not isinstance(entry, dict) or not rule.config_properties:
            continue
        properties = {key: value for key, value in entry.items() if key != "enforcementLevel"}
        jsonschema.validate(properties, {"type": "object", "properties": dict(rule.config_properties)})
        checked += 1
    assert checked >= 1


def test_a_config_value_outside_the_schema_is_refused() -> None:
    import jsonschema

    from modelplane.policies.rules.nodes import NODE_GROUP_ALLOWED_GPU_TYPES

    schema = {"type": "object", "properties": dict(NODE_GROUP_ALLOWED_GPU_TYPES.config_properties)}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"allowedInstanceTypes": ["g4dn.xlarge"]}, schema)
