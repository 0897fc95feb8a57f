"""A small world of rows for admin tests: alice owns the Millers, bob is their child,
charlie belongs nowhere, dave owns the Smiths."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from accounts.models import UserProfile
from chores.models import (
    Assignment,
    Completion,
    Household,
    HouseholdMember,
    Notification,
    Task,
    TaskTemplate,
)


@dataclass
class World:
    alice: UserProfile
    bob: UserProfile
    charlie: UserProfile
    dave: UserProfile
    millers: Household
    smiths: Household
    owner: HouseholdMember
    child: HouseholdMember
    dave_member: HouseholdMember
    template: TaskTemplate
    own_template: TaskTemplate
    dishes: Task
    smiths_task: Task
    assignment: Assignment
    completion: Completion
    notification: Notification


def make_world() -> World:
    people = {
        name: UserProfile.objects.create(cognito_sub=f"sub-{name}", email=f"{name}@example.com")
        for name in ("alice", "bob", "charlie", "dave")
    }
    millers = Household.objects.create_with_owner(people["alice"], name="The Millers")
    smiths = Household.objects.create_with_owner(people["dave"], name="The Smiths")
    child = HouseholdMember.objects.create(household=millers, user=people["bob"], role="child")
    dishes = Task.objects.create(household=millers, title="Dishes", recurrence="FREQ=DAILY")
    assignment = Assignment.objects.create(
        task=dishes, assignee=child, due_at=timezone.now() + timedelta(days=1)
    )
    return World(
        **people,
        millers=millers,
        smiths=smiths,
        owner=millers.members.get(role="owner"),
        child=child,
        dave_member=smiths.members.get(),
        template=TaskTemplate.objects.create(title="Vacuum"),
        own_template=TaskTemplate.objects.create(household=millers, title="Dishes rota"),
        dishes=dishes,
        smiths_task=Task.objects.create(household=smiths, title="Lawn"),
        assignment=assignment,
        completion=Completion.objects.create(
            household=millers, member=child, task=dishes, assignment=assignment, points=3
        ),
        notification=Notification.objects.create(recipient=people["bob"], kind="system"),
    )
