"""``{% plan_of req as plan %}``: the plan view for templates whose view did not build one
(the approval page includes ``_plan.html`` with ``req`` only); reads the page's query string.
``{{ n|thousands }}``: 13000 → 13,000 (django.contrib.humanize is not installed)."""

from django import template

from requests_app.reporting import plan_view

register = template.Library()


@register.simple_tag(takes_context=True)
def plan_of(context, req):
    request = context.get("request")
    return plan_view.build(req, request.GET if request is not None else {})


@register.filter
def thousands(value):
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value
