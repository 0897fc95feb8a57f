"""The households-and-chores schema (V3-V10): one module per group of tables."""

from chores.models.history import AuditLog, Completion, Notification
from chores.models.households import Household, HouseholdMember
from chores.models.tasks import Assignment, Task, TaskTemplate

__all__ = [
    "Assignment",
    "AuditLog",
    "Completion",
    "Household",
    "HouseholdMember",
    "Notification",
    "Task",
    "TaskTemplate",
]
