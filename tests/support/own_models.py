"""Small networks of one's own, as a user would bring them: not in Pruneboard's registry, written
the way such models usually are, small enough for CPU tests. Each takes ``INPUT_SHAPE`` and
gives ``NUM_CLASSES`` logits. The CLI, API and ONNX tests reuse them.

- ``MobileNetish``: MobileNetV2-style inverted residuals (1x1 expansion, 3x3 depthwise, 1x1
  projection, BatchNorm, ReLU6), with residual additions where the width stays;
- ``DenseNetish``: DenseNet-style blocks whose layers concatenate their output to their input
  (post-activation: Conv-BN-ReLU, then the concatenation), with a transition between blocks;
- ``TinyViT``: a vision transformer with hand-written multi-head attention (patch-embedding
  Conv2d, positional embedding and class-free mean pooling, pre-norm LayerNorm blocks, q/k/v
  Linear layers, softmax attention with matmul/transpose/reshape, a GELU MLP).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SHAPE = (3, 16, 16)
NUM_CLASSES = 10


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int):
        super().__init__()
        hidden = inp * expand
        self.use_residual = stride == 1 and inp == out
        self.expand = nn.Sequential(nn.Conv2d(inp, hidden, 1, bias=False),
                                    nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True))
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.use_residual else out


class MobileNetish(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU6(inplace=True))
        self.blocks = nn.Sequential(
            InvertedResidual(width, width, 1, 2),
            InvertedResidual(width, 2 * width, 2, 3),
            InvertedResidual(2 * width, 2 * width, 1, 3),
        )
        self.last = nn.Sequential(nn.Conv2d(2 * width, 4 * width, 1, bias=False),
                                  nn.BatchNorm2d(4 * width), nn.ReLU6(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        x = self.pool(self.last(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))


class DenseLayer(nn.Module):
    def __init__(self, inp: int, growth: int):
        super().__init__()
        self.conv = nn.Conv2d(inp, growth, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(growth)

    def forward(self, x):
        return torch.cat([x, F.relu(self.norm(self.conv(x)))], 1)


class DenseNetish(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, stem: int = 8, growth: int = 6):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem), nn.ReLU())
        width = stem
        layers = []
        for _ in range(2):
            layers.append(DenseLayer(width, growth))
            width += growth
        self.block1 = nn.Sequential(*layers)
        self.transition = nn.Sequential(nn.Conv2d(width, width // 2, 1, bias=False),
                                        nn.BatchNorm2d(width // 2), nn.ReLU(), nn.AvgPool2d(2))
        width //= 2
        layers = []
        for _ in range(2):
            layers.append(DenseLayer(width, growth))
            width += growth
        self.block2 = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.block2(self.transition(self.block1(self.stem(x))))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, dim = x.shape
        head_dim = dim // self.heads

        def split(t):
            return t.reshape(batch, tokens, self.heads, head_dim).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(head_dim)
        out = torch.matmul(scores.softmax(dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1, self.act, self.fc2 = (nn.Linear(dim, dim * mlp_ratio), nn.GELU(),
                                        nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class TinyViT(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, image: int = INPUT_SHAPE[1],
                 patch: int = 4, dim: int = 16, depth: int = 2, heads: int = 2,
                 mlp_ratio: int = 4):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=1))


MODELS = {"mobilenetish": MobileNetish, "densenetish": DenseNetish, "tinyvit": TinyViT}


def make(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MODELS[name]()
