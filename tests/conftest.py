"""Shared fixtures: named personas, a clean Redis database, the RQ queues drained in-process."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from requests_app import roles


@pytest.fixture
def redis_db():
    """The suite's own Redis database, flushed before and after (never the whole server)."""
    from requests_app.queues import redis_connection

    connection = redis_connection()
    connection.flushdb()
    yield connection
    connection.flushdb()


def make_user(username, role=None, password="correct horse battery staple"):
    user = get_user_model().objects.create_user(
        username=username, email=f"{username}@example.com", password=password
    )
    if role == roles.ADMIN:
        user.is_staff = user.is_superuser = True
        user.save()
    elif role:
        roles.ensure_groups()
        user.groups.add(Group.objects.get(name=role))
    return user


PASSWORD = "correct horse battery staple"


@pytest.fixture
def officer(db):
    return make_user("olivia", roles.OFFICER)


@pytest.fixture
def officer2(db):
    return make_user("oscar", roles.OFFICER)


@pytest.fixture
def approver(db):
    return make_user("ada", roles.APPROVER)


@pytest.fixture
def approver2(db):
    return make_user("alan", roles.APPROVER)


@pytest.fixture
def auditor(db):
    return make_user("audrey", roles.AUDITOR)


@pytest.fixture
def admin_user(db):
    return make_user("root", roles.ADMIN)
