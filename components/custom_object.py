"""One way to create a custom object (a CRD's kind) from its rendered manifest, whatever operator owns it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


def custom_object(
    resource_name: str, manifest: Mapping[str, Any], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """The object `manifest` describes (apiVersion, kind, metadata, spec); its fields may hold other resources'
    outputs. Pass `depends_on` what installs the kind's CRD."""
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )
