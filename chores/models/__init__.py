"""The households-and-chores schema (V3-V10, V12): one module per group of tables."""

from chores.models.analytics import (
    AnalyticsRefreshState,
    HouseholdDailyStats,
    MemberDailyStats,
    ServiceDailyStats,
)
from chores.models.history import AuditLog, Completion, Notification
from chores.models.households import Household, HouseholdMember
from chores.models.tasks import Assignment, Task, TaskTemplate

__all__ = [
    "AnalyticsRefreshState",
    "Assignment",
    "AuditLog",
    "Completion",
    "Household",
    "HouseholdDailyStats",
    "HouseholdMember",
    "MemberDailyStats",
    "Notification",
    "ServiceDailyStats",
    "Task",
    "TaskTemplate",
]
