"""CloudWatch Logs terms every log group of the platform shares: the retention periods CloudWatch accepts, and
the KMS key policy that lets CloudWatch Logs encrypt exactly the platform's log groups."""

from __future__ import annotations

from typing import Any

RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545,
    731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,  # 2, 3, 5, 6, 7, 8, 9 and 10 years
)  # fmt: skip
"""The retention periods CloudWatch Logs accepts (PutRetentionPolicy); it rejects any other number."""
KEY_ACTIONS_FOR_LOGS = ("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*")
"""What CloudWatch Logs needs of a log group's key (CloudWatch Logs user guide, encrypt-log-data-kms)."""


def retention_problems(at: str, retention_days: object) -> list[str]:
    """The problem with a log retention, naming `at` (the config path) and the nearest allowed value, or none."""
    if isinstance(retention_days, int) and not isinstance(retention_days, bool):
        if retention_days in RETENTION_DAYS:
            return []
        given = retention_days
        nearest = min(RETENTION_DAYS, key=lambda days: abs(days - given))
    else:
        nearest = RETENTION_DAYS[0]
    return [
        f"{at}={retention_days!r}: CloudWatch Logs keeps logs for one of "
        f"{', '.join(map(str, RETENTION_DAYS))} days; use e.g. {nearest}"
    ]


def log_key_policy(
    partition: str, dns_suffix: str, region: str, account_id: str, log_group_pattern: str, purpose: str
) -> dict[str, Any]:
    """A log key's policy: the account administers it (IAM decides who may); CloudWatch Logs in this region may use
    it only for log groups matching `log_group_pattern` (the encryption context names the group; a pattern without
    wildcards names exactly one)."""
    log_groups = f"arn:{partition}:logs:{region}:{account_id}:log-group:{log_group_pattern}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersTheKey",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": f"CloudWatchLogsEncrypts{purpose}",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.{dns_suffix}"},
                "Action": list(KEY_ACTIONS_FOR_LOGS),
                "Resource": "*",
                "Condition": {
                    ("ArnLike" if "*" in log_group_pattern else "ArnEquals"): {
                        "kms:EncryptionContext:aws:logs:arn": log_groups
                    }
                },
            },
        ],
    }
