"""The background work on RQ: queues and the periodic scheduler, the reconciler, planning (scoping)
from the operation registry, and fulfilment (claims, executor, completion)."""
