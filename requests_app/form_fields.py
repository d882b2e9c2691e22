"""Form fields the filter bars share."""

from django import forms


class IsoDateField(forms.DateField):
    """A date typed as YYYY-MM-DD whatever the browser's locale: a text input, not
    ``type=date`` (which shows the locale's format, mm/dd/yyyy in en-US). Digits alone also
    work (20260131), for phone keypads that have no hyphen."""

    input_formats = ["%Y-%m-%d", "%Y%m%d"]
    widget = forms.DateInput(
        format="%Y-%m-%d",
        attrs={
            "pattern": r"\d{4}-?\d{2}-?\d{2}",
            "placeholder": "YYYY-MM-DD",
            "inputmode": "numeric",
            "autocomplete": "off",
            "title": "A date written YYYY-MM-DD",
            "size": "10",
        },
    )
    default_error_messages = {"invalid": "Enter a date as YYYY-MM-DD."}
