"""Create or update a portal user with one role, headless (for self-hosters and scripts)."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from requests_app.access import roles
from requests_app.accounts import changes, twofactor
from requests_app.accounts.identity import normalise_username


class Command(BaseCommand):
    help = "Create (or update) a user with a role: officer, approver, auditor or admin."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", required=True)
        parser.add_argument("--role", required=True, help="officer|approver|auditor|admin")
        parser.add_argument(
            "--password",
            help="Checked by the password validators; generated and printed when not given",
        )
        parser.add_argument(
            "--totp",
            action="store_true",
            help="Enrol an authenticator (TOTP) and print its otpauth:// URI once",
        )

    def handle(self, username, email, role, password=None, totp=False, **options):
        if role not in roles.ALL_ROLES:
            raise CommandError(
                f"unknown role {role!r}; choose one of: {', '.join(roles.ALL_ROLES)}"
            )
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"--email: {email!r} is not a valid email address") from None
        username = normalise_username(username)
        generated = password is None
        password = password or secrets.token_urlsafe(15)
        User = get_user_model()  # noqa: N806
        try:
            existing = User.objects.filter(username=username).first()
            validate_password(password, existing or User(username=username, email=email))
        except ValidationError as problem:
            raise CommandError(f"--password: {' '.join(problem.messages)}") from None
        roles.ensure_groups()
        with transaction.atomic(), changes.acting("manage.py add_user"):
            user, created = User.objects.get_or_create(username=username)
            user.email = email
            user.set_password(password)
            user.is_active = True
            if role == roles.ADMIN:
                user.is_staff = True
                user.is_superuser = True
            user.save()
            if role != roles.ADMIN:
                user.groups.add(Group.objects.get(name=role))
        verb = "created" if created else "updated"
        self.stdout.write(f"{verb} {username} ({role})")
        if generated:
            self.stdout.write(f"password: {password}")
        if totp:
            with changes.acting("manage.py add_user"):
                device = twofactor.enrol_totp(user)
            self.stdout.write(f"totp: {device.config_url}")
