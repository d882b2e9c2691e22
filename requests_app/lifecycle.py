"""Kept for one release: RQ jobs queued before the move to workflow/ name
``requests_app.lifecycle.scope_job``. New jobs name requests_app.workflow.lifecycle.scope_job."""

from requests_app.workflow.lifecycle import scope_job

__all__ = ["scope_job"]
