"""The recurrent family: torch's RNN/GRU/LSTM (cuDNN on GPU) under a pooling head and a linear classifier."""

import torch
from torch import Tensor, nn

from src.config.choices import Cell, Head, Init
from src.config.errors import ConfigError
from src.data.padded import Padded, valid_steps
from src.models.pooling import AttentionPooling, masked_mean

RECURRENT_LAYERS: dict[Cell, type[nn.RNNBase]] = {Cell.rnn: nn.RNN, Cell.gru: nn.GRU, Cell.lstm: nn.LSTM}


class RecurrentClassifier(nn.Module):
    """Reads (B, T, F) sequences with a recurrent stack and classifies them.

    Heads: `last` uses the final step (for a bidirectional stack: the forward direction's last step and
    the backward direction's first, the two ends that have seen the whole sequence); `flatten` feeds
    every step's output to one linear layer (hidden*seq_len inputs); `mean` and `max` pool over steps;
    `attention` is a learned weighted mean over steps (ALSTM-FCN's head).
    `seq_len=None` says the sequences differ in length: they arrive as `Padded` batches, are packed so
    that neither direction reads padding, and every head but `flatten` looks at valid steps only.
    `init`: `orthogonal` (Keras's recurrent init, our default) or `torch` (torch's own uniform init).
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        seq_len: int | None,
        cell: Cell | str = Cell.lstm,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        bidirectional: bool = False,
        head: Head | str = Head.last,
        init: Init | str = Init.orthogonal,
    ) -> None:
        super().__init__()
        # A saved config holds plain text; the Enums refuse anything outside their choices.
        cell, head, init = Cell(cell), Head(head), Init(init)
        if head == Head.flatten and seq_len is None:
            raise ConfigError(
                "model.head",
                "flatten",
                "last | mean | max | attention: these sequences differ in length, so no fixed steps to flatten",
            )
        self.head = head
        self.seq_len = seq_len
        self.rnn = RECURRENT_LAYERS[cell](
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,  # torch warns on dropout after the only layer
            bidirectional=bidirectional,
            batch_first=True,
        )
        if init == Init.orthogonal:
            self._init_orthogonal()
        features = hidden_size * (2 if bidirectional else 1)
        self.attention = AttentionPooling(features) if head == Head.attention else None
        self.features = features * seq_len if head == Head.flatten else features  # what pool() gives per sequence
        self.fc = nn.Linear(self.features, num_classes)

    def _init_orthogonal(self) -> None:
        """Orthogonal recurrent weights, Xavier input weights, zero biases (LSTM forget gate 1), per gate.

        Keras's recurrent defaults: they keep the recurrent Jacobian near norm 1 at the start, which
        trains faster than torch's uniform init (Saxe et al. 2014; Jozefowicz et al. 2015).
        """
        hidden = self.rnn.hidden_size
        for name, weight in self.rnn.named_parameters():
            gates = weight.data.split(hidden)  # (gates*H, F) -> one (H, F) block per gate
            for gate in gates:
                if name.startswith("weight_hh"):
                    nn.init.orthogonal_(gate)
                elif name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(gate)
                else:
                    nn.init.zeros_(gate)
            if name.startswith("bias_ih") and self.rnn.mode == "LSTM":
                gates[1].fill_(1.0)  # torch orders LSTM gates input, forget, cell, output

    def forward(self, x: Tensor | Padded) -> Tensor:
        """Class logits (B, classes) for sequences x (B, T, F), or for padded ones with their lengths."""
        return self.fc(self.read(x))

    def read(self, x: Tensor | Padded) -> Tensor:
        """The pooled recurrent features (B, self.features) of sequences x, padded ones read up to their lengths."""
        if isinstance(x, Padded):
            return self.pool(self._read_packed(x), x.lengths)
        out, _ = self.rnn(x)  # (B, T, D) with D = hidden_size * directions
        return self.pool(out)

    def _read_packed(self, x: Padded) -> Tensor:
        """Per-step outputs (B, T, D), zero past each length: packing hands the layers each sequence's
        valid steps only, so the backward direction starts at the sequence's own last step."""
        packed = nn.utils.rnn.pack_padded_sequence(x.values, x.lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.values.shape[1])
        return out  # (B, T, D), back in the batch's order

    def pool(self, out: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Reduce the per-step outputs (B, T, D) to the head's input, over each sequence's `lengths`
        (B,) valid steps when given."""
        if self.head == Head.flatten:
            return out.reshape(len(out), -1)  # (B, T*D)
        if self.attention is not None:
            return self.attention(out, lengths)  # (B, D)
        if lengths is None:
            return self._pool_fixed(out)
        if self.head == Head.mean:
            return masked_mean(out, lengths)  # (B, D)
        if self.head == Head.max:
            valid = valid_steps(lengths, out.shape[1], out.device).unsqueeze(-1)  # (B, T, 1)
            return out.masked_fill(~valid, float("-inf")).amax(dim=1)  # (B, D)
        rows = torch.arange(len(out), device=out.device)
        last = out[rows, lengths.to(out.device) - 1]  # (B, D): each sequence's own last valid step
        if self.rnn.bidirectional:
            hidden = self.rnn.hidden_size
            return torch.cat([last[:, :hidden], out[:, 0, hidden:]], dim=1)  # (B, 2H)
        return last

    def _pool_fixed(self, out: Tensor) -> Tensor:
        if self.head == Head.mean:
            return out.mean(dim=1)  # (B, D)
        if self.head == Head.max:
            return out.amax(dim=1)  # (B, D)
        if self.rnn.bidirectional:
            hidden = self.rnn.hidden_size
            return torch.cat([out[:, -1, :hidden], out[:, 0, hidden:]], dim=1)  # (B, 2H)
        return out[:, -1]  # (B, D)
