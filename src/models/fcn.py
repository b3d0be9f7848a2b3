"""The recurrent-FCN family (LSTM-FCN, GRU-FCN, ALSTM-FCN, MLSTM-FCN; Karim et al. 2017 and 2019): a recurrent
stack and, beside it over the same input, a fully convolutional branch; their features meet in one classifier.

The branch is Conv1d blocks ('same' padding, batch norm, ReLU; squeeze-and-excite in the first two when
asked) and a global average over steps. With padded batches it never reads padding: every block's output
is zero past each series' end (as the zero padding of a series read alone), batch norm's training
statistics count valid steps only, and the average is over valid steps.
"""

import torch
from torch import Tensor, nn

from src.config.choices import Cell, Head, Init
from src.config.errors import ConfigError
from src.data.padded import Padded, valid_steps
from src.models.pooling import masked_mean
from src.models.recurrent import RecurrentClassifier


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over (B, C, T) whose training statistics are taken over the valid steps only."""

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        if valid is None or not self.training:
            return super().forward(x)  # in eval, a per-channel affine map: padding cannot reach valid steps
        count = valid.sum() * 1.0  # valid (B, 1, T): steps counted once per channel
        mean = (x * valid).sum(dim=(0, 2)) / count  # (C,)
        var = (((x - mean[:, None]) * valid) ** 2).sum(dim=(0, 2)) / count  # (C,), biased, as batch norm's
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * count / (count - 1).clamp(min=1), self.momentum)
            self.num_batches_tracked += 1
        scale = self.weight / torch.sqrt(var + self.eps)  # (C,)
        return (x - mean[:, None]) * scale[:, None] + self.bias[:, None]


class SqueezeExcite(nn.Module):
    """Channel weights from the mean over valid steps (Hu et al. 2018, as MLSTM-FCN uses them; reduction 16)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        weights = self.gate(masked_mean(x.transpose(1, 2), lengths))  # (B, C)
        return x * weights.unsqueeze(-1)  # (B, C, T)


class ConvBlock(nn.Module):
    """Conv1d with 'same' padding, batch norm and ReLU (then squeeze-and-excite, when asked), (B, C, T) in and out."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, excite: bool) -> None:
        super().__init__()
        # 'same' padding, spelled out: torch's padding="same" warns on even widths and pads alike (left (k-1)//2).
        self.pad = nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0)
        self.conv = nn.Conv1d(in_channels, out_channels, kernel)
        nn.init.kaiming_uniform_(self.conv.weight, nonlinearity="relu")  # Keras's he_uniform, the authors' choice
        nn.init.zeros_(self.conv.bias)
        self.norm = MaskedBatchNorm(out_channels)
        self.excite = SqueezeExcite(out_channels) if excite else None

    def forward(self, x: Tensor, lengths: Tensor | None, valid: Tensor | None) -> Tensor:
        x = torch.relu(self.norm(self.conv(self.pad(x)), valid))
        if self.excite is not None:
            x = self.excite(x, lengths)
        return x if valid is None else x * valid  # zero past each end: the next block reads what 'same' pads


class RecurrentFCN(RecurrentClassifier):
    """A recurrent classifier (any cell and head) with a fully convolutional branch beside it.

    `filters` and `kernels`: the branch's blocks (128, 256, 128 filters of widths 8, 5, 3 as published);
    `squeeze_excite`: in the first two blocks (MLSTM-FCN); `shuffle`: the recurrent stack reads the series
    transposed, one step per channel of T features (the paper's "dimension shuffle", for series of one
    length); `head_dropout`: on the recurrent features before the classifier (0.8 in the paper).
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        seq_len: int | None,
        cell: Cell | str = Cell.lstm,
        hidden_size: int = 8,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        head: Head | str = Head.last,
        init: Init | str = Init.orthogonal,
        filters: tuple[int, ...] = (128, 256, 128),
        kernels: tuple[int, ...] = (8, 5, 3),
        squeeze_excite: bool = False,
        shuffle: bool = False,
        head_dropout: float = 0.8,
    ) -> None:
        if shuffle and seq_len is None:
            raise ConfigError(
                "model.shuffle", True, "false: these series differ in length, so no fixed steps to shuffle"
            )
        if len(filters) != len(kernels) or not filters:
            raise ConfigError("model.kernels", list(kernels), f"one kernel width per filter count ({len(filters)})")
        # Shuffled, the recurrent stack reads input_size steps of seq_len features.
        steps, features = (input_size, seq_len) if shuffle else (seq_len, input_size)
        super().__init__(
            features, num_classes, steps, cell, hidden_size, num_layers, dropout, bidirectional, head, init
        )
        self.shuffle = shuffle
        widths = [input_size, *filters]
        self.blocks = nn.ModuleList(
            ConvBlock(widths[k], widths[k + 1], kernels[k], excite=squeeze_excite and k < 2)
            for k in range(len(filters))
        )
        self.head_dropout = nn.Dropout(head_dropout)
        self.fc = nn.Linear(self.features + filters[-1], num_classes)

    def forward(self, x: Tensor | Padded) -> Tensor:
        """Class logits (B, classes) for series x (B, T, F), or padded ones with their lengths."""
        values, lengths = (x.values, x.lengths) if isinstance(x, Padded) else (x, None)
        recurrent = self.read(values.transpose(1, 2) if self.shuffle else x)  # (B, D); shuffled: F steps of T
        convolved = values.transpose(1, 2)  # (B, F, T): channels first, as Conv1d reads them
        valid = None if lengths is None else valid_steps(lengths, values.shape[1], values.device).unsqueeze(1)
        if valid is not None:  # whatever the padding holds, the first block reads zeros there
            convolved = convolved * valid
        for block in self.blocks:
            convolved = block(convolved, lengths, valid)  # (B, C, T)
        pooled = masked_mean(convolved.transpose(1, 2), lengths)  # (B, C)
        return self.fc(torch.cat([self.head_dropout(recurrent), pooled], dim=1))
