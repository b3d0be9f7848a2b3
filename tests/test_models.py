import pytest
import torch

from src.models.parameters import parameter_table
from src.models.recurrent import RecurrentClassifier


def test_default_lstm_on_rows_has_the_reference_parameter_count():
    model = RecurrentClassifier(input_size=28, num_classes=10, seq_len=28)
    rows, total = parameter_table(model)
    assert total == 821_770
    assert rows[0] == ("rnn.weight_ih_l0", (1024, 28), 1024 * 28)
    assert rows[-2] == ("fc.weight", (10, 256), 2560)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_output_shapes(cell, bidirectional):
    """out is N x L x D, h_n (and c_n) K x N x D' with K = layers * directions."""
    model = RecurrentClassifier(
        input_size=28, num_classes=10, seq_len=20, cell=cell, hidden_size=16, num_layers=3, bidirectional=bidirectional
    )
    directions = 2 if bidirectional else 1
    out, state = model.rnn(torch.rand(2, 20, 28))
    assert out.shape == (2, 20, 16 * directions)
    for tensor in state if cell == "lstm" else (state,):
        assert tensor.shape == (3 * directions, 2, 16)
    assert model(torch.rand(2, 20, 28)).shape == (2, 10)


@pytest.mark.parametrize("head", ["last", "flatten", "mean", "max"])
def test_heads_give_logits_and_flatten_sees_every_step(head):
    model = RecurrentClassifier(input_size=5, num_classes=3, seq_len=7, hidden_size=8, head=head)
    assert model(torch.rand(4, 7, 5)).shape == (4, 3)
    expected_inputs = 8 * 7 if head == "flatten" else 8
    assert model.fc.in_features == expected_inputs


def test_bidirectional_last_head_uses_forward_end_and_backward_start():
    model = RecurrentClassifier(input_size=3, num_classes=2, seq_len=6, hidden_size=4, bidirectional=True)
    out = torch.arange(2 * 6 * 8, dtype=torch.float).reshape(2, 6, 8)
    pooled = model.pool(out)
    assert torch.equal(pooled[:, :4], out[:, -1, :4])
    assert torch.equal(pooled[:, 4:], out[:, 0, 4:])


def test_unknown_cell_or_head_is_refused():
    with pytest.raises(ValueError, match="'transformer' is not a valid Cell"):
        RecurrentClassifier(input_size=3, num_classes=2, seq_len=4, cell="transformer")
    with pytest.raises(ValueError, match="'first' is not a valid Head"):
        RecurrentClassifier(input_size=3, num_classes=2, seq_len=4, head="first")
