"""Shared fixtures: named personas, a clean Redis database, the RQ queues drained in-process."""

import os

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from requests_app.access import roles


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 costs ~0.5 s per persona on this machine; the hasher is not under test here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def redis_db():
    """The suite's own Redis database, flushed before and after (never the whole server)."""
    from requests_app.jobs.queues import redis_connection

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


def totp_device(user):
    """The user's confirmed authenticator (made once): tests compute its codes."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="test app", confirmed=True)


def totp_code(device, offset=0):
    """The code ``device`` accepts now (offset: steps later, for a second, fresh code)."""
    import time

    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset * device.step
    return f"{totp.token():0{device.digits}d}"


def sign_in(client, user, *, second_factor=True, signed_in_seconds_ago=0):
    """What the two-step sign-in leaves in a test client's session: the user, their
    authenticator verified in this session (django-otp's key) and the sign-in time."""
    import time

    from requests_app.accounts import twofactor

    client.force_login(user)
    session = client.session
    if second_factor:
        session["otp_device_id"] = totp_device(user).persistent_id
        session[twofactor.SECOND_FACTOR] = "totp"
    session[twofactor.SIGNED_IN_AT] = time.time() - signed_in_seconds_ago
    session.save()
    return client


def proof_for(user, second_factor="totp", signed_in_seconds_ago=0):
    """A session's proof, for tests that call lifecycle.decide directly."""
    import time

    from requests_app.accounts.twofactor import SignInProof

    return SignInProof(user.pk, second_factor, time.time() - signed_in_seconds_ago)


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
    from requests_app.jobs.queues import worker

    worker(name=f"test-{os.getpid()}").work(burst=True, max_jobs=max_jobs, with_scheduler=False)


@pytest.fixture
def run_jobs(redis_db):
    return drain
