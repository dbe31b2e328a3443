from __future__ import annotations

from datetime import date

import pytest

from modelplane.components.eks_versions import (
    EKS_RELEASES,
    EXTENDED_USD_PER_CLUSTER_HOUR,
    STANDARD_USD_PER_CLUSTER_HOUR,
    Support,
    default_kubernetes_version,
    eks_release,
    extended_support_extra_usd_per_month,
    kubernetes_version_problems,
    kubernetes_version_warnings,
    newest_known_version,
    support_on,
)

TODAY = date(2026, 12, 1)
AT = "cluster"


def _months_later(day: date, months: int) -> date:
    month = day.month - 1 + months
    return day.replace(year=day.year + month // 12, month=month % 12 + 1)


def test_calendar_rows_are_ordered_and_keep_fourteen_plus_twelve_months() -> None:
    minors = [int(r.version.split(".")[1]) for r in EKS_RELEASES]
    assert minors == list(range(minors[0], minors[0] + len(minors)))
    for release in EKS_RELEASES:
        assert release.end_of_standard_support == _months_later(release.eks_release, 14), release.version
        assert release.end_of_extended_support == _months_later(release.end_of_standard_support, 12), release.version


def test_support_changes_at_the_start_of_each_calendar_day() -> None:
    release = eks_release("1.33")
    assert release is not None
    assert support_on(release, date(2025, 5, 28)) is Support.UNRELEASED
    assert support_on(release, date(2025, 5, 29)) is Support.STANDARD
    assert support_on(release, date(2026, 7, 28)) is Support.STANDARD
    # Extended support (and its billing) starts on the end-of-standard-support date itself.
    assert support_on(release, date(2026, 7, 29)) is Support.EXTENDED
    assert support_on(release, date(2027, 7, 28)) is Support.EXTENDED
    assert support_on(release, date(2027, 7, 29)) is Support.ENDED


@pytest.mark.parametrize(
    ("today", "expected"),
    [(date(2026, 6, 1), "1.35"), (date(2026, 6, 2), "1.36"), (TODAY, "1.36"), (date(2027, 8, 1), "1.36")],
)
def test_default_is_the_newest_version_in_standard_support(today: date, expected: str) -> None:
    assert default_kubernetes_version(today) == expected


def test_a_stale_calendar_falls_back_to_its_newest_version_and_says_so() -> None:
    stale = date(2027, 8, 2)
    assert default_kubernetes_version(stale) == "1.36"
    (warning,) = kubernetes_version_warnings(AT, "1.36", stale)
    assert warning.endswith("add the versions EKS released since to modelplane/components/eks_versions.py")
    (problem,) = kubernetes_version_problems(AT, "1.36", date(2028, 8, 2))
    assert problem.endswith("add the versions EKS released since to modelplane/components/eks_versions.py")


def test_a_version_in_standard_support_is_fine() -> None:
    assert kubernetes_version_problems(AT, "1.36", TODAY) == []
    assert kubernetes_version_warnings(AT, "1.36", TODAY) == []


def test_a_version_in_extended_support_runs_with_its_cost_named() -> None:
    assert kubernetes_version_problems(AT, "1.33", TODAY) == []
    (warning,) = kubernetes_version_warnings(AT, "1.33", TODAY)
    assert warning.startswith("cluster.kubernetes_version='1.33': in EKS extended support since 2026-07-29")
    assert "$0.60 per cluster-hour instead of $0.10 ($365 more a month)" in warning
    assert warning.endswith("upgrade, one minor version at a time, to 1.36")


def test_the_end_of_standard_support_is_announced_sixty_days_ahead() -> None:
    (warning,) = kubernetes_version_warnings(AT, "1.34", TODAY)
    assert "EKS standard support ends 2026-12-02 (in 1 day); from then the control plane costs $0.60" in warning
    assert kubernetes_version_warnings(AT, "1.34", date(2026, 10, 2)) == []
    assert kubernetes_version_warnings(AT, "1.34", date(2026, 10, 3)) != []


def test_a_version_past_extended_support_is_refused() -> None:
    assert kubernetes_version_problems(AT, "1.31", date(2026, 11, 25)) == []
    (problem,) = kubernetes_version_problems(AT, "1.31", TODAY)
    assert problem.startswith("cluster.kubernetes_version='1.31': EKS extended support ended 2026-11-26")
    assert problem.endswith("use 1.36")
    assert kubernetes_version_warnings(AT, "1.31", TODAY) == []


def test_a_version_newer_than_the_calendar_is_refused_naming_the_newest_known() -> None:
    assert newest_known_version() == "1.36"
    (problem,) = kubernetes_version_problems(AT, "1.37", TODAY)
    assert "newer than the newest version modelplane's EKS release calendar knows (1.36)" in problem
    assert "eks_versions.py" in problem


def test_a_version_older_than_the_calendar_is_refused() -> None:
    (problem,) = kubernetes_version_problems(AT, "1.20", TODAY)
    assert "long past EKS extended support; use 1.36" in problem


def test_an_unreleased_version_is_refused() -> None:
    (problem,) = kubernetes_version_problems(AT, "1.36", date(2026, 5, 1))
    assert problem == "cluster.kubernetes_version='1.36': not released on EKS until 2026-06-02; use 1.35"


@pytest.mark.parametrize("version", [1.3, 1.36, "v1.36", "1.36.2", "", None])
def test_a_value_that_is_no_minor_version_is_refused(version: object) -> None:
    (problem,) = kubernetes_version_problems(AT, version, TODAY)
    assert f"kubernetes_version={version!r}: not a Kubernetes minor version; quote it" in problem


def test_extended_support_costs_six_times_standard() -> None:
    assert (STANDARD_USD_PER_CLUSTER_HOUR, EXTENDED_USD_PER_CLUSTER_HOUR) == (0.10, 0.60)
    assert extended_support_extra_usd_per_month() == 365.0
