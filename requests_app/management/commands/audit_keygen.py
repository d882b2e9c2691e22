"""Create the Ed25519 key that signs the audit checkpoints, and print its public half."""

from django.core.management.base import BaseCommand, CommandError

from requests_app.evidence.checkpoints import keys


class Command(BaseCommand):
    help = (
        "Create the private key that signs audit checkpoints (PEM, mode 0600; never "
        "overwrites) and print the public key for DSR_AUDIT_PUBLIC_KEY and its fingerprint."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="Where to write the private key")

    def handle(self, out, **options):
        try:
            key = keys.generate_key_file(out)
        except FileExistsError:
            # Replacing the key silently would orphan every checkpoint signed with it.
            raise CommandError(f"{out} exists: refusing to overwrite a signing key") from None
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror}") from None
        public = key.public_key()
        self.stdout.write(f"private key written to {out} (mode 0600)")
        self.stdout.write(f"  give it to the scheduler only: DSR_AUDIT_SIGNING_KEY_FILE={out}")
        self.stdout.write(f"DSR_AUDIT_PUBLIC_KEY={keys.public_b64(public)}")
        self.stdout.write(f"fingerprint: {keys.fingerprint(public)}")
        self.stdout.write(
            "Give the public key and fingerprint to the auditors through another channel "
            "than the portal: they verify checkpoints with it."
        )
