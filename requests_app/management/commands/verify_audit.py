"""Recompute the audit hash chain and hold it against every signed checkpoint; exit non-zero
naming the first broken event (or the forged checkpoint)."""

from django.core.management.base import BaseCommand, CommandError

from requests_app.evidence.checkpoints import trusted_checkpoints
from requests_app.models.audit import verify_chain


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain against the signed checkpoints."

    def add_arguments(self, parser):
        parser.add_argument(
            "--latest-only",
            action="store_true",
            help="Check only the latest checkpoint (what the audit page does; faster)",
        )

    def handle(self, latest_only=False, **options):
        found = trusted_checkpoints(latest_only=latest_only)
        ok, count, head, problem = verify_chain(checkpoints=found)
        if not ok:
            raise CommandError(f"audit chain BROKEN after {count} good events: {problem}")
        self.stdout.write(f"audit chain OK: {count} events, head {head}")
        self.stdout.write(self.anchoring(found, count))

    def anchoring(self, found, count):
        """What the checkpoints vouch for, and what they cannot yet."""
        if not found.valid:
            return (
                "no signed checkpoint yet: removing the last events would go unnoticed "
                "(is the scheduler running with DSR_AUDIT_SIGNING_KEY_FILE?)"
            )
        latest = found.valid[max(found.valid)]
        where = "the database's copy" if latest.source == "database" else "the directory"
        text = (
            f"held against {len(found.valid)} signed checkpoint(s) from {where}; "
            f"the latest covers event #{latest.seq} ({latest.created_at})"
        )
        if count > latest.seq:
            text += f"; events #{latest.seq + 1} to #{count} are not anchored yet"
        return text
