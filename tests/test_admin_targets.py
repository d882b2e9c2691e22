"""The targets file: validated when a process starts, shown read-only to administrators."""

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command

from requests_app.azure import configured_targets
from tests.conftest import sign_in


@pytest.mark.django_db
def test_admin_sees_targets_without_secrets(client, admin_user, officer, azure, settings):
    sign_in(client, officer)
    assert client.get("/admin/azure-targets/").status_code == 302  # not staff: admin login
    sign_in(client, admin_user)
    page = client.get("/admin/azure-targets/").content.decode()
    assert "demo-dps.azure-devices-provisioning.net" in page
    assert "demo-hub-1.azure-devices.net" in page
    assert "other-hub" not in page
    key = azure.connection_string("demo-hub-1.azure-devices.net").split("SharedAccessKey=")[1]
    assert key not in page and "SharedAccessKey" not in page


def test_bad_targets_file_stops_the_worker_and_fails_checks(tmp_path, settings):
    bad = tmp_path / "targets.toml"
    bad.write_text(
        '[[hub]]\nhostname = "evil.example.com"\nauth = "sas"\nconnection_string_env = "NOPE"\n'
    )
    settings.DSR_AZURE_TARGETS = str(bad)
    configured_targets.cache_clear()
    try:
        errors = [e for e in run_checks() if e.id == "dsr.E002"]
        assert errors and "hub[1]" in errors[0].msg
        with pytest.raises(CommandError, match=r"hub\[1\]"):
            call_command("worker", "--burst")
    finally:
        configured_targets.cache_clear()
