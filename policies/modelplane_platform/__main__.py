"""The modelplane platform policy pack: `pulumi up --policy-pack policies/modelplane_platform
--policy-pack-config build/ENV/policy-config.json` (written by `modelplane plan ENV`).

Only builds the pack (constructing PolicyPack serves the engine and never returns); the rules live in
`modelplane.policies.rules`. Every environment fact a rule needs (budget, receivers, allowed types,
registries) comes from the policy config the engine hands the pack.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from modelplane.policies.rules.catalog import pack_policies

PolicyPack(
    name="modelplane-platform",
    policies=pack_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
)
