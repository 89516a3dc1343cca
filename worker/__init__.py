"""Pruneboard's worker: a Celery app whose one task runs a job by id (see ../shared/DESIGN.md §2).

``celery_app`` (app, task, heartbeat lifecycle), ``tasks`` (claim, run, outcome), ``jobs`` (the
status changes, as conditional UPDATEs), ``writer`` (events into metric points), ``heartbeat``
(liveness, cancel flag, recovery of jobs whose worker was lost). ``app`` is the ``-A`` target.
"""
