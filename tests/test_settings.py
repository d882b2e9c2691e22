"""Bad configuration stops the process with one line naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_check(**env_overrides):
    unset = {"SECRET_KEY", "DEBUG", "SITE_URL", "PORT", "DSR_DEV_SERVING"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DEBUG": "0"}, "SECRET_KEY: not set"),
        ({"DEBUG": "0", "SECRET_KEY": "change-me"}, "SECRET_KEY: is a placeholder"),
        (
            {"DEBUG": "0", "SECRET_KEY": "django-insecure-abcdefghijklmnopqrstuvwxyz0123456789"},
            "SECRET_KEY: is a placeholder",
        ),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "SECRET_KEY: too short"),
        ({"DEBUG": "maybe"}, "DEBUG: expected true/false"),
        ({"DEBUG": "1", "EMAIL_PORT": "twenty-five"}, "EMAIL_PORT: expected a whole number"),
        ({"DEBUG": "1", "DATABASE_URL": "mysql://x"}, "DATABASE_URL: expected sqlite"),
        ({"DEBUG": "1", "REDIS_URL": "localhost:6379"}, "REDIS_URL: expected redis://"),
        ({"DEBUG": "1", "SITE_URL": "portal.example.com"}, "SITE_URL: must start with http"),
        ({"DEBUG": "1", "SECRET_KEY_FILE": "/nonexistent/secret"}, "SECRET_KEY_FILE: cannot read"),
        ({"DEBUG": "1", "DSR_TRUSTED_PROXIES": "10.0.0.0/8,proxy"}, "DSR_TRUSTED_PROXIES: 'proxy'"),
        ({"DEBUG": "1", "DSR_REQUIRE_2FA": "approver,boss"}, "DSR_REQUIRE_2FA: unknown value"),
    ],
)
def test_bad_setting_refused_with_one_line(env, expected):
    result = run_check(**env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [f"configuration error: {lines[0].split(': ', 1)[1]}"]
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_secret_may_come_from_a_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("k" * 20 + "Zq8#pL2@xV9!mN4$rT6&" + "w" * 20 + "\n")
    result = run_check(DEBUG="0", SECRET_KEY_FILE=str(secret), ALLOWED_HOSTS="portal.example")
    assert result.returncode == 0, result.stderr


def test_debug_runs_without_a_key():
    result = run_check(DEBUG="1")
    assert result.returncode == 0, result.stderr


def print_setting(name, **env_overrides):
    unset = {"SECRET_KEY", "SITE_URL", "PORT", "DSR_HTTPS"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(env_overrides)
    code = f"from django.conf import settings; print(settings.{name})"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_site_url_follows_port_unless_set():
    assert print_setting("SITE_URL", DEBUG="1", PORT="8811") == "http://127.0.0.1:8811"
    assert print_setting("SITE_URL", DEBUG="1") == "http://127.0.0.1:8000"
    assert (
        print_setting("SITE_URL", DEBUG="1", PORT="8811", SITE_URL="https://dsr.example.org/")
        == "https://dsr.example.org"
    )


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"SITE_URL": "http://127.0.0.1:8000", "DSR_DEV_SERVING": "http://127.0.0.1:8811"}, True),
        ({"SITE_URL": "http://localhost:8811", "DSR_DEV_SERVING": "http://127.0.0.1:8811"}, False),
        ({"SITE_URL": "http://127.0.0.1:8000", "PORT": "8811"}, True),
        ({"PORT": "8811"}, False),  # SITE_URL follows PORT
        ({"SITE_URL": "https://dsr.example.org"}, False),  # nothing says what is served
    ],
)
def test_debug_warns_when_site_url_is_not_what_is_served(env, warned):
    result = run_check(DEBUG="1", **env)
    assert result.returncode == 0, result.stderr
    assert ("dsr.W002" in result.stderr) is warned, result.stderr


def test_production_cookies_carry_the_host_prefix():
    production = {"DEBUG": "0", "SECRET_KEY": "k" * 20 + "abcdefghijklmnopqrstuvwxyz0123456789"}
    assert print_setting("SESSION_COOKIE_NAME", **production) == "__Host-dsr_session"
    assert print_setting("CSRF_COOKIE_NAME", **production) == "__Host-csrftoken"
    assert print_setting("SESSION_COOKIE_SECURE", **production) == "True"
    assert print_setting("SESSION_COOKIE_NAME", DEBUG="1") == "dsr_session"
