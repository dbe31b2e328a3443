"""The team's cost-allocation tags, added to every resource it creates."""

from __future__ import annotations


def cost_tags(team: str, cost_center: str) -> dict[str, str]:
    return {"team": team, "cost-center": cost_center, "managed-by": "pulumi"}
