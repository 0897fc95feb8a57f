"""CloudWatch alarms on the figures `dbhealth --cloudwatch` publishes and on RDS's metrics.

What the settings want (`desired`), what CloudWatch has (`existing`), the plan between
them and carrying it out (`apply`): `manage.py dbalarms sync` prints the plan and applies
it. Every alarm's name starts with `alarm_prefix()` (DB_ALARM_PREFIX and the environment),
and only alarms with that prefix are ever read, changed or deleted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dbops.health.base import DEFAULT_THRESHOLDS, fmt, pretty, thresholds
from dbops.health.cloudwatch import metric_name
from sqlmigrations.redact import redact

PLAYBOOK = "docs/monitoring-playbook.md"
PERIOD = 300  # seconds: dbhealth's cron publishes every 5 minutes (docs/operations.md)
LEVELS = ("warning", "critical")
DELETE_BATCH = 100  # alarm names per delete_alarms call (the API's limit)

# The published figures alarmed on: (check, value key, the suffix of its thresholds' keys).
# Each gets one alarm per level its check's thresholds have, judged as dbhealth judges it:
# figure >= threshold. cache_hit_ratio is left out: dbhealth judges its ratios only once
# `min_blocks` were read, a count it does not publish; its HealthStatus alarm covers it.
FIGURES = [
    ("connections", "used_percent", ""),
    ("long_running_queries", "longest_seconds", "_seconds"),
    ("blocked_queries", "count", ""),
    ("invalid_indexes", "count", ""),
    ("unused_indexes", "count", ""),
    ("duplicate_indexes", "count", ""),
    ("missing_indexes", "count", ""),
    ("sequences", "max_used_percent", ""),
    ("dead_tuples", "max_dead_percent", ""),
    ("slow_queries", "count", ""),
    ("replication", "max_lag_bytes", "_bytes"),
    ("replication", "max_lag_seconds", "_seconds"),
    ("replication_slots", "max_retained_bytes", "_bytes"),
    ("replica", "lag_seconds", "_seconds"),
]
# Checks that can be critical (a critical threshold): a HealthStatus >= 2 alarm each, for
# what no figure shows (unreachable database, a lost slot, a replica that stopped streaming).
STATUS_CHECKS = [c for c, keys in DEFAULT_THRESHOLDS.items() if any("critical" in k for k in keys)]
CHECK_GROUPS = list(dict.fromkeys([*(f[0] for f in FIGURES), *STATUS_CHECKS]))


@dataclass(frozen=True)
class RdsMetric:
    """One RDS metric alarmed on: which instance, how it is read, which way is worse."""

    metric: str
    statistic: str
    instance_setting: str
    evaluation_periods: int
    suffix: str = ""
    below: bool = False  # lower is worse (free storage)


RDS_METRICS = {
    # Sustained for 15 minutes: a busy minute is not a problem.
    "rds_cpu": RdsMetric("CPUUtilization", "Average", "RDS_INSTANCE_ID", 3),
    "rds_free_storage": RdsMetric(
        "FreeStorageSpace", "Minimum", "RDS_INSTANCE_ID", 1, "_bytes", below=True
    ),
    "rds_connections": RdsMetric("DatabaseConnections", "Maximum", "RDS_INSTANCE_ID", 1),
    "rds_replica_lag": RdsMetric("ReplicaLag", "Maximum", "RDS_REPLICA_INSTANCE_ID", 2, "_seconds"),
}
# Defaults a deployment overrides per key in settings.DB_ALARM_THRESHOLDS.
RDS_THRESHOLDS: dict[str, dict[str, float]] = {
    "rds_cpu": {"warning": 80, "critical": 95},  # % CPU, 15-minute average
    # Bytes free: about 25 % and 10 % of RDS's smallest (20 GiB) volume; set for yours.
    "rds_free_storage": {"warning_bytes": 5 * 1024**3, "critical_bytes": 2 * 1024**3},
    # 70 % and 90 % of max_connections 200; RDS's default depends on the instance's memory.
    "rds_connections": {"warning": 140, "critical": 180},
    # Seconds, as the `replica` health check judges its lag.
    "rds_replica_lag": {"warning_seconds": 30, "critical_seconds": 300},
}
GROUPS = [*CHECK_GROUPS, *RDS_METRICS]

PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TOPIC_RE = re.compile(r"arn:aws[a-z-]*:sns:([a-z0-9-]+):(\d{12}):[A-Za-z0-9_-]{1,256}(\.fifo)?")
INSTANCE_RE = re.compile(r"[A-Za-z](?:-?[A-Za-z0-9])*")  # RDS: letters, digits, single hyphens


class AlarmError(Exception):
    """CloudWatch refused or could not be reached; the message names what to fix."""


@dataclass(frozen=True)
class Alarm:
    """One alarm as put_metric_alarm takes it."""

    name: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    below: bool
    threshold: float
    description: str
    actions: tuple[str, ...] = ()
    evaluation_periods: int = 1
    treat_missing_data: str = "notBreaching"

    def request(self) -> dict[str, Any]:
        return {
            "AlarmName": self.name,
            "AlarmDescription": self.description,
            "ActionsEnabled": True,
            "AlarmActions": list(self.actions),
            "OKActions": list(self.actions),
            "InsufficientDataActions": [],
            "Namespace": self.namespace,
            "MetricName": self.metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions],
            "Statistic": self.statistic,
            "Period": PERIOD,
            "EvaluationPeriods": self.evaluation_periods,
            "DatapointsToAlarm": self.evaluation_periods,
            "Threshold": float(self.threshold),
            "ComparisonOperator": "LessThanThreshold"
            if self.below
            else "GreaterThanOrEqualToThreshold",
            "TreatMissingData": self.treat_missing_data,
        }

    def condition(self) -> str:
        periods = f"{self.evaluation_periods} x {PERIOD} s"
        value = _show(self.metric, self.threshold)
        return f"{self.metric} {'<' if self.below else '>='} {value} ({self.statistic}, {periods})"


@dataclass
class Change:
    """One line of the plan: create, update, unchanged, delete, or left (not --prune)."""

    action: str
    name: str
    alarm: Alarm | None = None
    differences: list[str] = field(default_factory=list)


# --- settings -------------------------------------------------------------------------


def alarm_prefix() -> str:
    """Return the prefix of every alarm of this environment, e.g. choregarden-production-."""
    prefix = getattr(settings, "DB_ALARM_PREFIX", "choregarden-")
    if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
        # Empty, `--prune` would delete every alarm of the account.
        raise ImproperlyConfigured(
            f"DB_ALARM_PREFIX={prefix!r} is not a prefix: use 1 to 64 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit, e.g. choregarden-."
        )
    return f"{prefix}{settings.DJANGO_ENV}-"


def sns_topic(region: str | None) -> str:
    """Return ALARM_SNS_TOPIC_ARN ('' when unset), refused unless an SNS topic of `region`."""
    topic = getattr(settings, "ALARM_SNS_TOPIC_ARN", "") or ""
    if not topic:
        return ""
    match = TOPIC_RE.fullmatch(topic) if isinstance(topic, str) else None
    if match is None:
        raise ImproperlyConfigured(
            "ALARM_SNS_TOPIC_ARN is not an SNS topic's ARN: use "
            "arn:aws:sns:REGION:ACCOUNT:NAME (aws sns list-topics lists them)."
        )
    if region and match.group(1) != region:
        raise ImproperlyConfigured(
            f"ALARM_SNS_TOPIC_ARN is a topic of {match.group(1)}, the alarms are in {region} "
            "(AWS_REGION): CloudWatch only notifies a topic of its own region."
        )
    return topic


def rds_instance(setting: str) -> str:
    """Return the RDS instance id a setting names ('' when unset), refused if it is not one."""
    value = getattr(settings, setting, "") or ""
    if value and not (isinstance(value, str) and INSTANCE_RE.fullmatch(value) and len(value) < 64):
        raise ImproperlyConfigured(
            f"{setting}={value!r} is not an RDS instance identifier: 1 to 63 letters, digits "
            "and single hyphens, starting with a letter (aws rds describe-db-instances)."
        )
    return value


def alarm_thresholds() -> dict[str, dict[str, float] | None]:
    """Return each alarm group's thresholds, None for a group without alarms.

    A health check's are its DB_HEALTH_THRESHOLDS (the alarms judge as dbhealth does);
    the RDS metrics' are RDS_THRESHOLDS updated by DB_ALARM_THRESHOLDS. There, a group set
    to None has no alarms, a level set to None no alarm of that level; a health check may
    only be set to None.
    """
    configured = getattr(settings, "DB_ALARM_THRESHOLDS", None) or {}
    if not isinstance(configured, dict):
        raise ImproperlyConfigured(
            f"DB_ALARM_THRESHOLDS is a {type(configured).__name__}: use a dict, e.g. "
            "{'rds_cpu': {'warning': 70}, 'unused_indexes': None}."
        )
    unknown = [key for key in configured if key not in GROUPS]
    if unknown:
        raise ImproperlyConfigured(
            f"DB_ALARM_THRESHOLDS names unknown alarms {sorted(map(repr, unknown))}: use "
            f"{', '.join(GROUPS)}."
        )
    result: dict[str, dict[str, float] | None] = {}
    for group in GROUPS:
        value = configured.get(group, {})
        if value is None:
            result[group] = None
        elif group in RDS_METRICS:
            result[group] = _rds_limits(group, value)
        elif group in configured:
            raise ImproperlyConfigured(
                f"DB_ALARM_THRESHOLDS[{group!r}] can only be None (no alarms): the thresholds "
                f"of the {group} check are DB_HEALTH_THRESHOLDS[{group!r}]."
            )
        else:
            result[group] = thresholds(group)
    return result


def _rds_limits(group: str, value: Any) -> dict[str, float]:
    name = f"DB_ALARM_THRESHOLDS[{group!r}]"
    defaults = RDS_THRESHOLDS[group]
    if not isinstance(value, dict):
        raise ImproperlyConfigured(
            f"{name} is a {type(value).__name__}: use None or a dict of {', '.join(defaults)}."
        )
    limits: dict[str, float] = dict(defaults)
    for key, number in value.items():
        if key not in defaults:
            raise ImproperlyConfigured(f"{name} has no key {key!r}: use {', '.join(defaults)}.")
        if number is None:
            del limits[key]
            continue
        if (
            not isinstance(number, int | float)
            or isinstance(number, bool)
            or not math.isfinite(number)
            or number < 0
            or (group == "rds_cpu" and number > 100)
        ):
            top = " up to 100" if group == "rds_cpu" else ""
            raise ImproperlyConfigured(
                f"{name}[{key!r}] = {number!r} is not a number from 0{top}, or None (no alarm)."
            )
        limits[key] = number
    suffix, below = RDS_METRICS[group].suffix, RDS_METRICS[group].below
    warning, critical = limits.get(f"warning{suffix}"), limits.get(f"critical{suffix}")
    if warning is not None and critical is not None and (warning <= critical) == below:
        worse = "below" if below else "above"
        raise ImproperlyConfigured(
            f"{name}: critical{suffix} {fmt(critical)} must be {worse} warning{suffix} "
            f"{fmt(warning)}."
        )
    return limits


# --- what the settings want ------------------------------------------------------------


@dataclass
class Desired:
    """The alarms the settings want, and notes on what was left out and why."""

    alarms: list[Alarm]
    notes: list[str]


def desired(*, namespace: str, database: str, topic: str) -> Desired:
    """Return the alarms on the figures dbhealth publishes for `database` in `namespace`
    (dimensions Environment and Database, as `dbhealth --cloudwatch` sends them) and on
    RDS's metrics of RDS_INSTANCE_ID and RDS_REPLICA_INSTANCE_ID."""
    prefix = alarm_prefix()
    limits = alarm_thresholds()
    actions = (topic,) if topic else ()
    dims = (("Environment", settings.DJANGO_ENV), ("Database", database))
    alarms: list[Alarm] = []
    notes: list[str] = []

    def add(name: str, **kwargs: Any) -> None:
        alarms.append(Alarm(name=prefix + name.replace("_", "-"), actions=actions, **kwargs))

    for check, key, suffix in FIGURES:
        check_limits = limits[check]
        if check_limits is None:
            continue
        metric = metric_name(check, key)
        for level in LEVELS:
            if f"{level}{suffix}" not in check_limits:
                continue
            add(
                f"db-{check}-{key}-{level}",
                namespace=namespace,
                metric=metric,
                dimensions=dims,
                statistic="Maximum",
                below=False,
                threshold=check_limits[f"{level}{suffix}"],
                description=_describe(
                    f"{level.capitalize()}: {metric} reached DB_HEALTH_THRESHOLDS"
                    f"[{check!r}][{level + suffix!r}].",
                    check,
                ),
            )
    for check in STATUS_CHECKS:
        if limits[check] is None:
            continue
        add(
            f"db-{check}-status-critical",
            namespace=namespace,
            metric="HealthStatus",
            dimensions=(*dims, ("Check", check)),
            statistic="Maximum",
            below=False,
            threshold=2,
            description=_describe(f"Critical: dbhealth's {check} check is critical.", check),
        )
    # The dead man's switch: without it a stopped cron job silences every alarm above.
    add(
        "db-dbhealth-silent",
        namespace=namespace,
        metric="HealthStatus",
        dimensions=(*dims, ("Check", "connections")),
        statistic="SampleCount",
        below=True,
        threshold=1,
        evaluation_periods=3,
        treat_missing_data="breaching",
        description=_describe(
            "Critical: dbhealth --cloudwatch has published nothing for 15 minutes.",
            "dbhealth-silent",
        ),
    )
    for group, spec in RDS_METRICS.items():
        group_limits = limits[group]
        if group_limits is None:
            continue
        instance = rds_instance(spec.instance_setting)
        if not instance:
            note = f"{spec.instance_setting} is not set: no {spec.metric} alarms."
            if note not in notes:
                notes.append(note)
            continue
        for level in LEVELS:
            key = f"{level}{spec.suffix}"
            if key not in group_limits:
                continue
            add(
                f"{group}-{level}",
                namespace="AWS/RDS",
                metric=spec.metric,
                dimensions=(("DBInstanceIdentifier", instance),),
                statistic=spec.statistic,
                below=spec.below,
                threshold=group_limits[key],
                evaluation_periods=spec.evaluation_periods,
                treat_missing_data="missing",
                description=_describe(
                    f"{level.capitalize()}: {spec.metric} of {instance} passed "
                    f"DB_ALARM_THRESHOLDS[{group!r}][{key!r}].",
                    group,
                ),
            )
    if not topic:
        notes.append("ALARM_SNS_TOPIC_ARN is not set: the alarms notify nobody.")
    return Desired(alarms, notes)


def _describe(what: str, anchor: str) -> str:
    return (
        f"{what} What to do: {PLAYBOOK}#{anchor}. "
        "Made by manage.py dbalarms sync: a change made elsewhere is undone by the next sync."
    )


def _show(metric: str, value: float) -> str:
    return pretty(int(value)) if metric.endswith(("Bytes", "Space")) else fmt(value)


# --- the plan ----------------------------------------------------------------------------


def plan(wanted: Iterable[Alarm], existing: dict[str, dict[str, Any]], prune: bool) -> list[Change]:
    """Compare the wanted alarms with the existing ones (by name) into a plan."""
    changes: list[Change] = []
    wanted_names = set()
    for alarm in wanted:
        wanted_names.add(alarm.name)
        current = existing.get(alarm.name)
        if current is None:
            changes.append(Change("create", alarm.name, alarm))
            continue
        differences = _differences(_comparable(current), _comparable(alarm.request()))
        changes.append(
            Change("update" if differences else "unchanged", alarm.name, alarm, differences)
        )
    for name in sorted(set(existing) - wanted_names):
        changes.append(Change("delete" if prune else "left", name))
    return changes


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    keys = Alarm("", "", "", (), "", False, 0, "").request()
    result = {key: config.get(key) for key in keys}
    result["Dimensions"] = sorted((d["Name"], d["Value"]) for d in config.get("Dimensions") or [])
    for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
        result[key] = sorted(config.get(key) or [])
    if result["Threshold"] is not None:
        result["Threshold"] = float(result["Threshold"])
    return result


def _differences(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    differences = []
    for key, value in wanted.items():
        old = current.get(key)
        if old == value:
            continue
        if key == "AlarmDescription":
            differences.append("AlarmDescription changed")
        elif key == "Dimensions":
            show = lambda dims: ",".join(f"{k}={v}" for k, v in dims) or "-"  # noqa: E731
            differences.append(f"Dimensions {show(old or [])} -> {show(value)}")
        elif key == "Threshold" and old is not None:
            metric = str(wanted["MetricName"])
            differences.append(f"Threshold {_show(metric, old)} -> {_show(metric, value)}")
        else:
            differences.append(f"{key} {_plain(old)} -> {_plain(value)}")
    return differences


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "-" if value is None else str(value)


# --- CloudWatch ----------------------------------------------------------------------------


def client() -> Any:
    """Return a CloudWatch client in AWS_REGION (boto3's default chain when unset)."""
    import boto3
    from botocore.config import Config

    try:
        # Adaptive retries pace the burst of put_metric_alarm calls of a first sync.
        return boto3.client(
            "cloudwatch",
            region_name=getattr(settings, "AWS_REGION", None) or None,
            config=Config(retries={"mode": "adaptive"}),
        )
    except BotoCoreError as err:
        raise aws_error(err, "set up the CloudWatch client", "") from err


def existing(cloudwatch: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """Return the metric alarms whose names start with `prefix`, by name (every page)."""
    found: dict[str, dict[str, Any]] = {}
    try:
        for page in cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"]
        ):
            for alarm in page.get("MetricAlarms", []):
                found[alarm["AlarmName"]] = alarm
    except (BotoCoreError, ClientError) as err:
        raise aws_error(err, f"list the alarms named {prefix}*", prefix) from err
    return found


def apply(cloudwatch: Any, changes: list[Change], prefix: str) -> None:
    """Carry out the plan's creates, updates and deletes (never a name outside `prefix`)."""
    puts = [c.alarm for c in changes if c.action in ("create", "update") and c.alarm]
    deletes = [c.name for c in changes if c.action == "delete"]
    outside = [name for name in deletes if not name.startswith(prefix)]
    if outside:
        raise AlarmError(f"refusing to delete alarms outside the prefix {prefix}: {outside}")
    done, total = 0, len(puts) + len(deletes)
    try:
        for alarm in puts:
            cloudwatch.put_metric_alarm(**alarm.request())
            done += 1
        for start in range(0, len(deletes), DELETE_BATCH):
            batch = deletes[start : start + DELETE_BATCH]
            cloudwatch.delete_alarms(AlarmNames=batch)
            done += len(batch)
    except (BotoCoreError, ClientError) as err:
        raise aws_error(
            err, f"change the alarms ({done} of {total} changes made; sync again)", prefix
        ) from err


def aws_error(err: BotoCoreError | ClientError, doing: str, prefix: str) -> AlarmError:
    """Return the one line that says what failed and what to fix; never a secret."""
    if isinstance(err, NoCredentialsError):
        hint = "no AWS credentials: run with an IAM role, or set AWS_PROFILE"
    elif isinstance(err, NoRegionError):
        hint = "no AWS region: set AWS_REGION"
    elif isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        message = str(err.response.get("Error", {}).get("Message", ""))
        if code in ("AccessDenied", "AccessDeniedException"):
            hint = (
                "the role needs cloudwatch:DescribeAlarms, cloudwatch:PutMetricAlarm and "
                f"cloudwatch:DeleteAlarms on the alarms named {prefix}*"
            )
        elif code in ("Throttling", "ThrottlingException", "RequestLimitExceeded"):
            hint = "CloudWatch throttled the calls: run sync again in a minute"
        elif code in (
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "SignatureDoesNotMatch",
        ):
            hint = "the AWS credentials were refused (expired or wrong): renew them"
        elif code == "LimitExceeded":
            hint = "the account's CloudWatch alarm quota is reached: raise it or prune alarms"
        else:
            hint = "check AWS_REGION, the credentials and the settings named above"
        hint = f"{code}: {message}; {hint}" if code else hint
    else:
        hint = f"{err}; check AWS_REGION and the network"
    return AlarmError(" ".join(redact(f"cannot {doing}: {hint}.").split()))
