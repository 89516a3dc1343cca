"""The learning-rate schedules: one torch-free definition, shared with the job spec's forecast."""

from pruneboard.spec.schedules import learning_rate

__all__ = ["learning_rate"]
