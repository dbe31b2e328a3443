"""KMS rule: symmetric keys the stack creates rotate their key material every year (or sooner)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.props import is_true, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule

KEY_TYPES = frozenset({"aws:kms/key:Key"})
ROTATABLE_SPECS = (None, "SYMMETRIC_DEFAULT")
"""KMS rotates only symmetric encryption keys; asymmetric and HMAC keys cannot rotate."""


def _rotation(_type: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    spec = props.get("customerMasterKeySpec") or props.get("keySpec")
    usage = props.get("keyUsage")
    rotation = props.get("enableKeyRotation")
    if is_unknown(spec) or is_unknown(usage) or is_unknown(rotation) or is_true(rotation):
        return []
    if spec not in ROTATABLE_SPECS or usage not in (None, "ENCRYPT_DECRYPT"):
        return []
    return [f"enableKeyRotation is {rotation!r}; set it true so the key material rotates (rotationPeriodInDays)"]


KMS_KEY_ROTATION = ResourceRule(
    name="aws-kms-key-enable-rotation",
    description="Symmetric KMS keys rotate their key material (enableKeyRotation).",
    why="The keys encrypt secrets, logs, images and artifacts for years; rotation bounds what one exposed key "
    "version decrypts.",
    resource_types=KEY_TYPES,
    check=_rotation,
)

RULES: list[Rule] = [KMS_KEY_ROTATION]
