"""Pooling over steps that never reads padding: the masked mean, and learned attention (ALSTM-FCN's head)."""

import torch
from torch import Tensor, nn

from src.data.padded import valid_steps


def masked_mean(values: Tensor, lengths: Tensor | None) -> Tensor:
    """The mean of (B, T, D) over each sequence's `lengths` (B,) valid steps (all T when None): (B, D)."""
    if lengths is None:
        return values.mean(dim=1)
    valid = valid_steps(lengths, values.shape[1], values.device).unsqueeze(-1)  # (B, T, 1)
    return (values * valid).sum(dim=1) / lengths.to(values.device, values.dtype).unsqueeze(1)


class AttentionPooling(nn.Module):
    """A learned weighted mean over steps: score_t = v . tanh(W h_t), weights softmax(score) over the
    valid steps only, so that padding gets no weight (Bahdanau-style additive attention)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.project = nn.Linear(features, features)
        self.score = nn.Linear(features, 1, bias=False)

    def forward(self, values: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, T, D) to (B, D)."""
        scores = self.score(torch.tanh(self.project(values))).squeeze(-1)  # (B, T)
        if lengths is not None:
            valid = valid_steps(lengths, values.shape[1], values.device)  # (B, T)
            scores = scores.masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)  # (B, T, 1)
        return (weights * values).sum(dim=1)  # (B, D)
