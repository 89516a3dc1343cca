"""The fully connected network of the gRDA and sDprun papers (LeNet-300-100 style)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """``x -> flatten -> [Linear -> ReLU] per hidden width -> Linear -> logits``.

    No normalisation layers, so each hidden neuron's group is just its weight row and bias.
    """

    def __init__(self, in_features: int, hidden_widths: Sequence[int], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width_in = in_features
        for width in hidden_widths:
            layers += [nn.Linear(width_in, width), nn.ReLU(inplace=False)]
            width_in = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
