"""Browsing the audit trail: the filter form and its query (request, actor, action, dates),
newest event first. The events are read as they are; describing them is ``timeline``'s job."""

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from requests_app.form_fields import DateRangeForm
from requests_app.models import AuditEvent
from requests_app.reporting.timeline import ACTIONS

PAGE_SIZE = 50


class AuditFilterForm(DateRangeForm):
    request = forms.CharField(
        label="Request",
        required=False,
        max_length=32,
        widget=forms.TextInput(attrs={"placeholder": "DSR-2026-0001"}),
    )
    actor = forms.CharField(
        label="Actor",
        required=False,
        max_length=254,
        widget=forms.TextInput(attrs={"placeholder": "user name or system"}),
    )
    action = forms.ChoiceField(
        label="Event",
        required=False,
        choices=[("", "Any"), *sorted(ACTIONS.items(), key=lambda pair: pair[1])],
    )


def _day_start(day):
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def filtered_events(data):
    """Events matching the valid parts of the form's ``cleaned_data``, newest first."""
    events = AuditEvent.objects.all()
    reference = (data.get("request") or "").strip().upper()
    if reference:
        events = events.filter(request_ref=reference)
    actor = (data.get("actor") or "").strip()
    if actor:
        events = events.filter(actor_name__iexact=actor)
    if data.get("action"):
        events = events.filter(action=data["action"])
    if data.get("from"):
        events = events.filter(created_at__gte=_day_start(data["from"]))
    if data.get("to"):
        events = events.filter(created_at__lt=_day_start(data["to"] + timedelta(days=1)))
    return events.order_by("-seq")
