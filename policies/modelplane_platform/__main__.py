"""The modelplane platform policy pack: `pulumi up --policy-pack policies/modelplane_platform
--policy-pack-config policies/modelplane_platform/config/ENV.json`.

Only builds the pack (constructing PolicyPack serves the engine and never returns); the rules live in
`policies.rules`. The environment's budget and receivers come from the stack's own config.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.rules.catalog import pack_policies
from policies.rules.environment import running_stack_policy_config

PolicyPack(
    name="modelplane-platform",
    policies=pack_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
    initial_config=running_stack_policy_config(),
)
