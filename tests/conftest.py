"""Shared fixtures: named personas, a clean Redis database, the RQ queues drained in-process."""

import os

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from requests_app import roles


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 costs ~0.5 s per persona on this machine; the hasher is not under test here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


@pytest.fixture
def azure(tmp_path, settings):
    """The bundled simulator served over real HTTP on a free port, with a targets file the
    portal loads like any deployment's (connection strings in 0600 files beside it)."""
    from requests_app.azure import configured_targets
    from simulator.app import Simulator
    from simulator.server import serve
    from simulator.targets import write_targets

    sim = Simulator(seed=1, devices=30)
    server = serve(sim)
    path = write_targets(sim, tmp_path / "azure" / "targets.toml", server.url)
    settings.DSR_AZURE_TARGETS = str(path)
    configured_targets.cache_clear()
    yield sim
    server.shutdown()
    configured_targets.cache_clear()


def drain(max_jobs=1000):
    """Run every queued job in this process (a non-forking worker in burst mode)."""
    from requests_app.queues import worker

    worker(name=f"test-{os.getpid()}").work(burst=True, max_jobs=max_jobs, with_scheduler=False)


@pytest.fixture
def run_jobs(redis_db):
    return drain
