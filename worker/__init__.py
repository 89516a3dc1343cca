"""Pruneboard's worker: a Celery app whose tasks run a job or an analysis by id (see
docs/architecture.md).

``celery_app`` (app, tasks, heartbeat lifecycle), ``tasks`` (claim, run, outcome), ``jobs`` (the
status changes, as conditional UPDATEs), ``analyses`` (the loss-valley analysis task),
``writer`` (events into metric points), ``heartbeat`` (liveness, data folders, cancel flag,
recovery of jobs whose worker was lost). ``app`` is the ``-A`` target.
"""
