"""The base of every pruning method: hooks around the optimizer step that do nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pruning.job import Job


class Method:
    def __init__(self, job: Job):
        self.job = job

    def before_forward(self, step: int) -> None:
        """Before the forward pass of ``step`` (0-based count of completed steps)."""

    def before_step(self, step: int) -> None:
        """Gradients are ready; the optimizer has not stepped yet."""

    def after_step(self, step: int) -> None:
        """The optimizer has stepped."""

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
