"""The privacy officer's intake form: a new request with its identifiers, pasted or as CSV."""

from django import forms
from django.db import transaction
from django.utils import timezone
from django.utils.html import format_html

from requests_app.discovery import keys as subject_keys
from requests_app.discovery import search as discovery
from requests_app.form_fields import IsoDateField
from requests_app.intake import rules as intake
from requests_app.models import Kind
from requests_app.workflow import regulations

PASTE_HELP = format_html(
    "One identifier per line. A line is a DPS <strong>registration ID</strong>; to name a "
    "device in an IoT hub directly, write <code>device-id@hub-name.azure-devices.net</code> "
    "(the hub must be one the portal is configured for). Blank lines are ignored, duplicates "
    "are merged. At most {} identifiers.",
    f"{intake.MAX_IDENTIFIERS:,}",
)
CSV_HELP = format_html(
    "Instead of pasting: a CSV file (UTF-8, at most {} MB) whose first line names the columns "
    "<code>registration_id</code>, <code>device_id</code>, <code>hub</code>. Each row gives a "
    "registration ID, or a device ID and its hub, or all three.",
    intake.MAX_UPLOAD_BYTES // 1024 // 1024,
)


class IntakeForm(forms.Form):
    field_order = [
        "kind",
        "regulation",
        "received_at",
        "subject_reference",
        "identifiers",
        "csv_file",
        "subject_keys",
        "block_reprovisioning",
    ]
    kind = forms.ChoiceField(choices=Kind.choices, widget=forms.RadioSelect)
    regulation = forms.ChoiceField(choices=regulations.choices, widget=forms.RadioSelect)
    received_at = IsoDateField(
        label="Received on",
        initial=timezone.localdate,
        error_messages={"invalid": "Enter the date as YYYY-MM-DD, e.g. 2026-03-31."},
        help_text=(
            "YYYY-MM-DD. The day the data subject's request reached you; the deadline counts "
            "from it."
        ),
    )
    subject_reference = forms.CharField(
        max_length=200,
        help_text=(
            "A ticket number or pseudonym that links to your own records. Keep personal data "
            "(names, email addresses) out of the portal."
        ),
    )
    identifiers = forms.CharField(
        label="Identifiers",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "autocomplete": "off"}),
        help_text=PASTE_HELP,
    )
    subject_keys = forms.CharField(
        label="Find devices by owner",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
        help_text=format_html(
            "The data subject's key(s), one per line — a customer number or email address as "
            "your devices record their owner (the targets file's <code>owner_paths</code>). "
            "Instead of, or besides, identifiers: every configured hub is searched and you "
            "confirm the devices found. At most {} keys; quotes and backslashes cannot be "
            "searched for. Kept only until the request's retention ends.",
            subject_keys.MAX_KEYS,
        ),
    )
    csv_file = forms.FileField(
        label="Or a CSV file",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
        help_text=CSV_HELP,
    )
    block_reprovisioning = forms.BooleanField(
        label="Block re-provisioning",
        required=False,
        initial=True,
        help_text=(
            "Erasure only: for a device enrolled through a group, create a disabled individual "
            "enrollment so the device cannot provision itself back. Ignored for an export."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.identifier_list = None
        self.keys: list[str] = []
        # The deadline each regulation sets, one line each, from the regulation table.
        lines = [entry.describe() for entry in regulations.TABLE.values()]
        self.fields["regulation"].help_text = format_html("<br>".join(["{}"] * len(lines)), *lines)

    def clean_received_at(self):
        received = self.cleaned_data["received_at"]
        problem = intake.check_received_at(received)
        if problem:
            raise forms.ValidationError(problem)
        return received

    def clean_subject_reference(self):
        value = self.cleaned_data["subject_reference"]
        problem = intake.check_subject_reference(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_csv_file(self):
        upload = self.cleaned_data.get("csv_file")
        if upload:
            problem = intake.check_upload_size(upload.size)
            if problem:
                raise forms.ValidationError(problem)
        return upload

    def clean_subject_keys(self):
        keys, problems = subject_keys.parse_keys(self.cleaned_data["subject_keys"])
        if problems:
            raise forms.ValidationError(problems)
        if keys and not discovery.searchable_targets():
            raise forms.ValidationError(
                "No hub or DPS in the targets file declares owner_paths, so devices cannot be "
                "found by owner; paste identifiers instead."
            )
        self.keys = keys
        return "\n".join(keys)

    def clean(self):
        cleaned = super().clean()
        pasted = (cleaned.get("identifiers") or "").strip()
        upload = cleaned.get("csv_file")
        if "csv_file" in self.errors:
            return cleaned
        if pasted and upload:
            self.add_error(
                "identifiers", "Paste the identifiers or upload a CSV file, not both at once."
            )
            return cleaned
        if not pasted and not upload:
            if not self.keys and "subject_keys" not in self.errors:
                self.add_error(
                    "identifiers",
                    "Paste at least one identifier, upload a CSV file, or enter the subject's "
                    "key to find their devices.",
                )
            return cleaned
        hubs = intake.configured_hub_names()
        if upload:
            field, parsed = "csv_file", intake.parse_csv(upload.read(), hubs)
        else:
            field, parsed = "identifiers", intake.parse_pasted(pasted, hubs)
        self.identifier_list = parsed
        for message in parsed.messages():
            self.add_error(field, message)
        return cleaned

    @property
    def notices(self):
        """Things worth telling the officer that are not errors (duplicates merged)."""
        notice = self.identifier_list.duplicates_notice() if self.identifier_list else ""
        return [notice] if notice else []

    @property
    def identifier_count(self):
        return len(self.identifier_list.identifiers) if self.identifier_list else 0

    def save(self, *, user):
        """The draft, and the search for the subject's devices if keys were given: both or
        neither."""
        data = self.cleaned_data
        with transaction.atomic():
            created = intake.create_request(
                user=user,
                kind=data["kind"],
                regulation=data["regulation"],
                received_at=data["received_at"],
                subject_reference=data["subject_reference"],
                identifiers=self.identifier_list.identifiers if self.identifier_list else [],
                block_reprovisioning=data["block_reprovisioning"],
                via="form",
            )
            if self.keys:
                discovery.start(created, keys=self.keys, actor=user)
        return created
