"""What people read: the register, the dashboard and its chart, the timeline in words, the plan as
a page, the request page's parts, the audit page and the guides."""
