"""The officer's page for taking in a new request."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from requests_app import access
from requests_app.access import roles
from requests_app.intake import samples as devsamples
from requests_app.intake.form import IntakeForm


@login_required
@require_http_methods(["GET", "POST"])
def request_create(request):
    access.require(request.user, (roles.OFFICER,))
    if request.method == "POST":
        form = IntakeForm(request.POST, request.FILES)
        if form.is_valid():
            created = form.save(user=request.user)
            for notice in form.notices:
                messages.info(request, notice)
            searching = " The search for the subject's devices has started." if form.keys else ""
            messages.success(
                request,
                f"{created.reference} is saved as a draft with {form.identifier_count} "
                f"identifiers.{searching} Submit it to plan the work.",
            )
            return redirect(created)
    else:
        form = IntakeForm()
    return render(
        request,
        "requests_app/request_form.html",
        {"form": form, "dev_samples": devsamples.read()},
    )
