"""Dev mode only: print a demo user's current authenticator code (``make run``'s approvers and
admin have TOTP, and a newcomer has no authenticator app set up for them)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "DEBUG only: print the current 6-digit code of a user's authenticator."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, username, **options):
        if not settings.DEBUG:
            raise CommandError("totp_code only runs with DEBUG on (it reads a second factor)")
        user = get_user_model().objects.filter(username=username).first()
        device = user and TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None:
            raise CommandError(f"{username} has no authenticator")
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        self.stdout.write(f"{totp.token():0{device.digits}d}")
