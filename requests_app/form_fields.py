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


class DateRangeForm(forms.Form):
    """A filter form with optional ``from`` and ``to`` dates (added by name: "from" is a
    Python keyword), refusing a range that ends before it starts."""

    date_labels = ("From", "To")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from"] = IsoDateField(label=self.date_labels[0], required=False)
        self.fields["to"] = IsoDateField(label=self.date_labels[1], required=False)

    def clean(self):
        data = super().clean()
        start, end = data.get("from"), data.get("to")
        if start and end and start > end:
            self.add_error("to", "The end of the date range is before its start.")
        return data
