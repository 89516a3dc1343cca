"""HTTP routes under /api/v1: the only place that raises HTTPException."""
