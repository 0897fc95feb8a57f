"""Publish the health checks' figures as CloudWatch metrics (boto3 put_metric_data)."""

from __future__ import annotations

from typing import Any

from dbops.health import CheckResult

DEFAULT_NAMESPACE = "ChoreGarden/Database"
BATCH = 20  # metrics per put_metric_data call (the long-standing API limit)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def metric_name(check: str, key: str) -> str:
    """Return the metric a check's figure is published as: connections, used_percent ->
    ConnectionsUsedPercent (the alarms of dbops.health.alarms watch the same names)."""
    return _camel(check) + _camel(key)


def _unit(key: str, result: CheckResult) -> str:
    if key.endswith("percent") or result.unit == "%":
        return "Percent"
    if key.endswith("seconds"):
        return "Seconds"
    if key.endswith("bytes"):
        return "Bytes"
    return "Count"


def metric_data(results: list[CheckResult], dimensions: dict[str, str]) -> list[dict[str, Any]]:
    """Return one datum per figure (e.g. ConnectionsUsedPercent) and a HealthStatus per check
    (0 ok or info, 1 warning, 2 critical), all with the given dimensions."""
    dims = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    data: list[dict[str, Any]] = []
    for result in results:
        for key, value in result.values.items():
            if value is None:
                continue
            data.append(
                {
                    "MetricName": metric_name(result.name, key),
                    "Dimensions": dims,
                    "Value": float(value),
                    "Unit": _unit(key, result),
                }
            )
        data.append(
            {
                "MetricName": "HealthStatus",
                "Dimensions": [*dims, {"Name": "Check", "Value": result.name}],
                "Value": float(result.severity),
                "Unit": "None",
            }
        )
    return data


def publish(
    results: list[CheckResult],
    *,
    namespace: str,
    dimensions: dict[str, str],
    client: Any = None,
) -> int:
    """Send the figures to CloudWatch; return how many data points were sent."""
    if client is None:
        import boto3
        from django.conf import settings

        client = boto3.client(
            "cloudwatch", region_name=getattr(settings, "AWS_REGION", None) or None
        )
    data = metric_data(results, dimensions)
    for start in range(0, len(data), BATCH):
        client.put_metric_data(Namespace=namespace, MetricData=data[start : start + BATCH])
    return len(data)
