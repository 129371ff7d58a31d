"""The observer protocol of a ``WorkerPool``: subclass ``Observer``, add it with ``pool.add_observer()``."""

from ._observer import AttemptEnded, AttemptStarted, JobFinished, JobProgress, JobQueued, JobStarted, Observer

__all__ = ["AttemptEnded", "AttemptStarted", "JobFinished", "JobProgress", "JobQueued", "JobStarted", "Observer"]
