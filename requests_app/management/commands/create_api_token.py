"""Issue an API token for an officer. The token is printed once; only its SHA-256 is kept."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from requests_app.access import roles
from requests_app.accounts import changes
from requests_app.api import issue_token


class Command(BaseCommand):
    help = "Create a bearer token for the JSON API, for a privacy officer. Printed once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for, e.g. the system")

    def handle(self, username, name="", **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if not user.is_active:
            raise CommandError(f"{username} is deactivated")
        if not roles.has_role(user, roles.OFFICER):
            raise CommandError(
                f"{username} is not a privacy officer; API tokens are only for officers "
                "(an administrator can add the user to the officer group)"
            )
        if len(name) > 100:
            raise CommandError("--name: at most 100 characters")
        with changes.acting("manage.py create_api_token"):  # recorded by accounts.changes
            token, raw = issue_token(user, name=name)
        self.stdout.write(f"token for {username} ({token.prefix}…), shown only this once:")
        self.stdout.write(raw)
