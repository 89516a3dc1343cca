"""Pruneboard worker (see ../shared/DESIGN.md §2); built by the job-service issue."""
