"""What happens to a request between intake and fulfilment: the state changes and decisions,
deadlines and the regulation table, approval links, reminders and emails."""
