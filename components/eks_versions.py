"""The EKS Kubernetes release calendar: which minor versions a cluster may run on a given day, and at what cost.

Plain data and functions, tested with pinned dates. The table changes only by a commit: a version newer than
its newest row is refused until someone adds the row from the calendar, so the platform never runs a version
whose support dates nobody has read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

STANDARD_USD_PER_CLUSTER_HOUR = 0.10
EXTENDED_USD_PER_CLUSTER_HOUR = 0.60
"""The control plane's price in standard and in extended support, per cluster-hour (the extended price is
the total, not a surcharge). Source: the AWS Containers blog, "Amazon EKS extended support for Kubernetes
versions pricing" (aws.amazon.com/blogs/containers/amazon-eks-extended-support-for-kubernetes-versions-pricing),
and aws.amazon.com/eks/pricing; read 2026-12-01."""
HOURS_PER_MONTH = 730
STANDARD_SUPPORT_NOTICE_DAYS = 60
"""Warn this long before a version leaves standard support: AWS announces the date at least 60 days ahead."""
_MINOR_VERSION = re.compile(r"^1\.(\d+)$")


@dataclass(frozen=True)
class EksRelease:
    """One Kubernetes minor version on EKS. Each date is a UTC day: a version is in standard support before
    `end_of_standard_support`, in extended support from that day (billing starts at its beginning) until
    `end_of_extended_support`, and from that day no cluster can be created on it."""

    version: str
    eks_release: date
    end_of_standard_support: date
    end_of_extended_support: date


# The "Amazon EKS Kubernetes release calendar" table of
# https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html, whose source is
# github.com/awsdocs/amazon-eks-user-guide, latest/ug/versioning/kubernetes-versions.adoc: rows 1.29-1.34 as in
# commit 013856044148 of that file. Rows 1.35 and 1.36 come from the page's later revisions as others quote them
# (the 1.35 markdown row "January 27, 2026 | March 27, 2027 | March 27, 2028"; endoflife.date/amazon-eks) and the
# EKS release notes (kubernetes-versions-standard.html#kubernetes-1-36, 1.36 on EKS 2026-06-02, 14 + 12 months
# on). All read 2026-12-01; no EKS 1.37 was announced by then. Every row keeps "14 months standard, 12 extended".
# Add a row when EKS releases a version (`aws eks describe-cluster-versions` lists the dates too).
EKS_RELEASES: tuple[EksRelease, ...] = (
    EksRelease("1.29", date(2024, 1, 23), date(2025, 3, 23), date(2026, 3, 23)),
    EksRelease("1.30", date(2024, 5, 23), date(2025, 7, 23), date(2026, 7, 23)),
    EksRelease("1.31", date(2024, 9, 26), date(2025, 11, 26), date(2026, 11, 26)),
    EksRelease("1.32", date(2025, 1, 23), date(2026, 3, 23), date(2027, 3, 23)),
    EksRelease("1.33", date(2025, 5, 29), date(2026, 7, 29), date(2027, 7, 29)),
    EksRelease("1.34", date(2025, 10, 2), date(2026, 12, 2), date(2027, 12, 2)),
    EksRelease("1.35", date(2026, 1, 27), date(2027, 3, 27), date(2028, 3, 27)),
    EksRelease("1.36", date(2026, 6, 2), date(2027, 8, 2), date(2028, 8, 2)),
)


class Support(StrEnum):
    UNRELEASED = "unreleased"
    STANDARD = "standard"
    EXTENDED = "extended"
    """Runs, at six times the control plane's standard price."""
    ENDED = "ended"
    """No new cluster; EKS upgrades existing control planes on its own schedule."""


def support_on(release: EksRelease, today: date) -> Support:
    """Where `release` stands in its support lifecycle on `today`."""
    if today < release.eks_release:
        return Support.UNRELEASED
    if today < release.end_of_standard_support:
        return Support.STANDARD
    if today < release.end_of_extended_support:
        return Support.EXTENDED
    return Support.ENDED


def eks_release(version: str) -> EksRelease | None:
    """The calendar's row for `version`, None when the table has none."""
    return next((r for r in EKS_RELEASES if r.version == version), None)


def _minor(version: str) -> int:
    match = _MINOR_VERSION.match(version)
    return int(match.group(1)) if match else -1


def newest_known_version() -> str:
    return max(EKS_RELEASES, key=lambda r: _minor(r.version)).version


def default_kubernetes_version(today: date | None = None) -> str:
    """The newest version in standard support on `today` (default: the real today). Should the calendar hold none
    (nobody added the versions EKS released since), the newest it knows, which the checks below then flag."""
    today = today or date.today()
    supported = [r for r in EKS_RELEASES if support_on(r, today) is Support.STANDARD]
    if not supported:
        return newest_known_version()
    return max(supported, key=lambda r: _minor(r.version)).version


def _use_instead(today: date) -> str:
    target = eks_release(default_kubernetes_version(today))
    if target is not None and support_on(target, today) is Support.STANDARD:
        return f"use {target.version}"
    return "add the versions EKS released since to modelplane/components/eks_versions.py"


def kubernetes_version_problems(at: str, version: object, today: date | None = None) -> list[str]:
    """Why `version` cannot be used for a cluster on `today`: unknown, newer than the calendar, unreleased, or
    past extended support. Each problem names `at` (the config path), the value and the fix."""
    today = today or date.today()
    field = f"{at}.kubernetes_version={version!r}"
    if not isinstance(version, str) or _minor(version) < 0:
        return [
            f"{field}: not a Kubernetes minor version; quote it, e.g. '{newest_known_version()}' "
            "(YAML reads 1.30 as the number 1.3)"
        ]
    release = eks_release(version)
    newest = newest_known_version()
    if release is None:
        if _minor(version) > _minor(newest):
            return [
                f"{field}: newer than the newest version modelplane's EKS release calendar knows ({newest}); use "
                f"{newest}, or add its row (with its support dates) to modelplane/components/eks_versions.py"
            ]
        return [
            f"{field}: older than the calendar (from {EKS_RELEASES[0].version}), long past EKS extended support; "
            f"{_use_instead(today)}"
        ]
    status = support_on(release, today)
    if status is Support.UNRELEASED:
        return [f"{field}: not released on EKS until {release.eks_release}; {_use_instead(today)}"]
    if status is Support.ENDED:
        return [
            f"{field}: EKS extended support ended {release.end_of_extended_support}; no cluster can be created on "
            f"it and EKS upgrades existing ones on its own schedule; {_use_instead(today)}"
        ]
    return []


def extended_support_extra_usd_per_month() -> float:
    """What a cluster in extended support costs a month more than one in standard support."""
    return round((EXTENDED_USD_PER_CLUSTER_HOUR - STANDARD_USD_PER_CLUSTER_HOUR) * HOURS_PER_MONTH, 2)


def kubernetes_version_warnings(at: str, version: object, today: date | None = None) -> list[str]:
    """What a usable `version` costs or will soon cost: extended support's price, or its imminent start."""
    today = today or date.today()
    if kubernetes_version_problems(at, version, today):
        return []
    release = eks_release(str(version))
    if release is None:
        return []
    field = f"{at}.kubernetes_version={version!r}"
    price = (
        f"the control plane costs ${EXTENDED_USD_PER_CLUSTER_HOUR:.2f} per cluster-hour instead of "
        f"${STANDARD_USD_PER_CLUSTER_HOUR:.2f} (${extended_support_extra_usd_per_month():.0f} more a month)"
    )
    target = default_kubernetes_version(today)
    upgrade = (
        f"upgrade, one minor version at a time, to {target}"
        if target != version
        else "add the versions EKS released since to modelplane/components/eks_versions.py"
    )
    if support_on(release, today) is Support.EXTENDED:
        return [
            f"{field}: in EKS extended support since {release.end_of_standard_support} (until "
            f"{release.end_of_extended_support}): {price}; {upgrade}"
        ]
    days_left = (release.end_of_standard_support - today).days
    if days_left <= STANDARD_SUPPORT_NOTICE_DAYS:
        days = "1 day" if days_left == 1 else f"{days_left} days"
        return [
            f"{field}: EKS standard support ends {release.end_of_standard_support} (in {days}); from then "
            f"{price}; {upgrade}"
        ]
    return []
