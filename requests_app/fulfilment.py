"""Kept for one release: RQ jobs queued before the move to jobs/ name
``requests_app.fulfilment.run_job``. New jobs name requests_app.jobs.fulfilment.run_job."""

from requests_app.jobs.fulfilment import run_job

__all__ = ["run_job"]
