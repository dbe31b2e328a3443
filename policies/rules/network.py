"""Network rule: no security group lets the whole internet reach SSH, RDP or every port.

Ingress is written three ways: a SecurityGroup's inline `ingress` blocks, a SecurityGroupRule of type
`ingress`, and a `vpc.SecurityGroupIngressRule` (one CIDR, `cidrIpv4` or `cidrIpv6`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from modelplane.policies.rules.props import as_dict, as_list, is_unknown
from modelplane.policies.rules.rule import ResourceRule, Rule, Undecided

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ADMIN_PORTS = {22: "SSH", 3389: "RDP"}
ALL_PROTOCOLS = ("-1", "all")
PORT_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp"}


def _is_whole_internet(cidr: str) -> bool:
    return ipaddress.ip_network(cidr, strict=False).prefixlen == 0


def _exposure(protocol: Any, from_port: Any, to_port: Any) -> str | None:
    """What an ingress of `protocol` over ports from..to exposes: 'every port', 'SSH (22)', ...; None if nothing."""
    # Protocols are names or numbers ("-1", "6"); the engine may send a number as a float.
    name = str(protocol).lower().removesuffix(".0") if isinstance(protocol, (str, int, float)) else None
    if name in ALL_PROTOCOLS:
        return "every port and protocol"
    if name not in PORT_PROTOCOLS:
        return None  # icmp and other protocols carry no ports
    low, high = int(from_port), int(to_port)
    if low <= 0 and high >= 65535:
        return f"every {PORT_PROTOCOLS[name]} port"
    exposed = [f"{label} ({port})" for port, label in ADMIN_PORTS.items() if low <= port <= high]
    # RDP also listens on udp/3389; SSH is tcp only.
    if PORT_PROTOCOLS[name] == "udp":
        exposed = [e for e in exposed if e.startswith("RDP")]
    return ", ".join(exposed) or None


def _open_ingress(where: str, entry: dict[str, Any], protocol_key: str, cidr_keys: tuple[str, ...]) -> list[str]:
    values = [entry.get(key) for key in (protocol_key, "fromPort", "toPort", *cidr_keys)]
    if any(is_unknown(value) for value in values):
        return []
    cidrs = [c for key in cidr_keys for c in (as_list(entry.get(key)) or [entry.get(key)]) if isinstance(c, str)]
    try:
        open_cidrs = [c for c in cidrs if _is_whole_internet(c)]
        exposure = _exposure(entry.get(protocol_key), entry.get("fromPort", 0), entry.get("toPort", 65535))
    except (TypeError, ValueError) as error:
        return [Undecided(f"{where}: cannot read its protocol, ports or CIDRs ({error})")]
    if not open_cidrs or exposure is None:
        return []
    return [
        f"{where}: {', '.join(open_cidrs)} reaches {exposure}; allow only the CIDRs or security groups that need it"
    ]


def _no_open_ingress(type_: str, props: dict[str, Any], _config: Mapping[str, Any]) -> list[str]:
    if type_ == SECURITY_GROUP:
        ingress = props.get("ingress")
        if is_unknown(ingress):
            return []
        return [
            problem
            for index, entry in enumerate(as_list(ingress))
            for problem in _open_ingress(
                f"ingress[{index}]", as_dict(entry), "protocol", ("cidrBlocks", "ipv6CidrBlocks")
            )
        ]
    if type_ == SECURITY_GROUP_RULE:
        if props.get("type") != "ingress":
            return []
        return _open_ingress("ingress rule", props, "protocol", ("cidrBlocks", "ipv6CidrBlocks"))
    return _open_ingress("ingress rule", props, "ipProtocol", ("cidrIpv4", "cidrIpv6"))


SECURITY_GROUP_NO_OPEN_INGRESS = ResourceRule(
    name="aws-ec2-security-group-disallow-open-ingress",
    description="No security group lets 0.0.0.0/0 or ::/0 reach SSH (22), RDP (3389) or every port.",
    why="GPU nodes and file systems sit in private subnets; an internet-wide rule is one misrouted subnet or public "
    "IP away from exposing them to every scanner.",
    resource_types=frozenset({SECURITY_GROUP, SECURITY_GROUP_RULE, INGRESS_RULE}),
    check=_no_open_ingress,
)

RULES: list[Rule] = [SECURITY_GROUP_NO_OPEN_INGRESS]
