"""Keys are taken out of Azure documents before they are stored; the rest is left as it was."""

import copy

from requests_app.evidence.redaction import REDACTED, redact

HUB_DEVICE = {
    "deviceId": "dev-1",
    "status": "enabled",
    "authentication": {
        "type": "sas",
        "symmetricKey": {"primaryKey": "UHJpbWFyeUtleQ==", "secondaryKey": "U2Vjb25kYXJ5"},
        "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
    },
}


def test_hub_device_keys_are_redacted_with_their_paths():
    clean, paths = redact(HUB_DEVICE)
    assert clean["authentication"]["symmetricKey"] == {
        "primaryKey": REDACTED,
        "secondaryKey": REDACTED,
    }
    assert clean["deviceId"] == "dev-1"
    assert (
        clean["authentication"]["x509Thumbprint"] == HUB_DEVICE["authentication"]["x509Thumbprint"]
    )
    assert paths == [
        "authentication.symmetricKey.primaryKey",
        "authentication.symmetricKey.secondaryKey",
    ]


def test_input_is_never_changed():
    original = copy.deepcopy(HUB_DEVICE)
    redact(HUB_DEVICE)
    assert original == HUB_DEVICE


def test_tpm_keys_at_any_depth_and_any_case():
    enrollment = {
        "registrationId": "tpm-1",
        "attestation": {
            "type": "tpm",
            "tpm": {"endorsementKey": "AToAAQALAAMAsgAg", "StorageRootKey": "AToAAQALAAMA"},
        },
    }
    clean, paths = redact(enrollment)
    assert clean["attestation"]["tpm"] == {"endorsementKey": REDACTED, "StorageRootKey": REDACTED}
    assert paths == ["attestation.tpm.endorsementKey", "attestation.tpm.StorageRootKey"]


def test_everything_under_symmetric_key_is_redacted_whatever_its_name():
    clean, paths = redact({"attestation": {"SymmetricKey": {"keyA": "s3cret", "nested": ["x"]}}})
    assert clean == {"attestation": {"SymmetricKey": {"keyA": REDACTED, "nested": [REDACTED]}}}
    assert paths == ["attestation.SymmetricKey.keyA", "attestation.SymmetricKey.nested[0]"]


def test_lists_are_walked_and_paths_carry_indexes():
    modules = [
        {"moduleId": "m1", "authentication": {"symmetricKey": {"primaryKey": "k1"}}},
        {"moduleId": "m2", "authentication": {"symmetricKey": {"primaryKey": "k2"}}},
    ]
    clean, paths = redact({"modules": modules})
    assert [m["authentication"]["symmetricKey"]["primaryKey"] for m in clean["modules"]] == [
        REDACTED,
        REDACTED,
    ]
    assert paths == [
        "modules[0].authentication.symmetricKey.primaryKey",
        "modules[1].authentication.symmetricKey.primaryKey",
    ]
    assert modules[0]["authentication"]["symmetricKey"]["primaryKey"] == "k1"


def test_null_keys_hold_no_secret_and_are_not_listed():
    clean, paths = redact({"symmetricKey": {"primaryKey": None, "secondaryKey": None}})
    assert clean == {"symmetricKey": {"primaryKey": None, "secondaryKey": None}}
    assert paths == []


def test_documents_without_keys_come_back_equal():
    twin = {"deviceId": "d", "tags": {"owner": "x"}, "properties": {"desired": {"a": [1, 2]}}}
    clean, paths = redact(twin)
    assert clean == twin and clean is not twin
    assert paths == []
    assert redact([1, "a", None]) == ([1, "a", None], [])
