"""The sign-in forms. Usernames are cleaned exactly as identity.normalise_username does."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from requests_app.accounts.identity import normalise_username

CODE_HELP = "The 6-digit code from your authenticator app, or one of your recovery codes."


class PasswordForm(AuthenticationForm):
    """Django's login form (it calls ``authenticate``, which django-axes guards and counts)."""

    def clean_username(self):
        return normalise_username(self.cleaned_data.get("username"))


class CodeForm(forms.Form):
    otp_token = forms.CharField(
        label="Code",
        max_length=32,
        help_text=CODE_HELP,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


class ReauthForm(forms.Form):
    password = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autofocus": True})
    )
    otp_token = forms.CharField(
        label="Code",
        max_length=32,
        help_text=CODE_HELP,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
