"""The options of one loss-valley analysis are the job spec's ``AnalysisOptions`` (torch-free),
so the engine, the API and the CLI take the same fields with the same ranges."""

from __future__ import annotations

from pruneboard.spec import ANALYSIS_KINDS as KINDS
from pruneboard.spec import AnalysisOptions as ValleyOptions

__all__ = ["KINDS", "ValleyOptions"]
