"""Variable-length sequences: the model never reads padding, in any cell, head or direction."""

import pytest
import torch

from src.benchmarking.step_check import exact_kernels
from src.config.errors import ConfigError, one_line
from src.data.padded import Padded
from src.models.recurrent import RecurrentClassifier
from src.training.steps import graph_blocker

LENGTHS = torch.tensor([5, 1, 9, 3])
CUDA = torch.device("cuda")


def padded_batch(extra: int, seed: int = 0) -> Padded:
    """The same four series of LENGTHS, padded to 9 + extra steps with random values (drawn from `seed`)
    past each end: whatever the padding holds, it must not matter."""
    values = torch.randn(len(LENGTHS), 9, 3, generator=torch.Generator().manual_seed(0))  # (B, T, F)
    garbage = 100 * torch.randn(len(LENGTHS), 9 + extra, 3, generator=torch.Generator().manual_seed(seed + 1))
    steps = torch.arange(9 + extra)
    valid = (steps < LENGTHS.unsqueeze(1)).unsqueeze(-1)  # (B, T, 1)
    values = torch.nn.functional.pad(values, (0, 0, 0, extra))
    return Padded(torch.where(valid, values, garbage), LENGTHS)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("head", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_appending_padding_never_changes_the_logits(cell, head, bidirectional):
    torch.manual_seed(0)
    model = RecurrentClassifier(
        input_size=3, num_classes=4, seq_len=None, cell=cell, hidden_size=6, num_layers=2, head=head,
        bidirectional=bidirectional,
    ).eval()  # fmt: skip
    with torch.no_grad():
        reference = model(padded_batch(extra=0))
        for extra in (1, 7):
            assert torch.allclose(model(padded_batch(extra, seed=extra)), reference, atol=1e-5)
        # ... and each sequence read alone, unpadded, as a plain tensor, gives its row of the batch
        batch = padded_batch(extra=0)
        for row, length in enumerate(LENGTHS.tolist()):
            alone = model(batch.values[row : row + 1, :length])
            assert torch.allclose(alone, reference[row : row + 1], atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("head", ["last", "mean", "max"])
def test_cudnn_reads_padded_batches_with_lengths_on_the_cpu_as_the_cpu_does(cell, head):
    torch.manual_seed(0)
    model = RecurrentClassifier(
        input_size=3, num_classes=4, seq_len=None, cell=cell, hidden_size=6, num_layers=2, head=head, bidirectional=True
    ).eval()
    batch = padded_batch(extra=4)
    on_gpu = batch.to(CUDA)
    assert on_gpu.values.device.type == CUDA.type and on_gpu.lengths.device.type == "cpu"  # packing reads them there
    with torch.no_grad(), exact_kernels():  # no TF32: the CPU's float32 results, up to summation order
        expected = model(batch)
        got = model.to(CUDA)(on_gpu)
    assert torch.allclose(got.cpu(), expected, atol=1e-5), (got.cpu() - expected).abs().max()


def test_padded_batches_train_and_padding_gets_no_gradient():
    torch.manual_seed(0)
    model = RecurrentClassifier(input_size=3, num_classes=4, seq_len=None, hidden_size=6, bidirectional=True)
    batch = padded_batch(extra=4)
    values = batch.values.clone().requires_grad_(True)
    model(Padded(values, batch.lengths)).sum().backward()
    valid = (torch.arange(13) < LENGTHS.unsqueeze(1)).unsqueeze(-1)  # (B, T, 1)
    assert values.grad[~valid.expand_as(values)].abs().max() == 0
    assert values.grad[valid.expand_as(values)].abs().max() > 0


def test_flatten_is_refused_for_variable_lengths_in_one_line():
    with pytest.raises(ConfigError) as raised:
        RecurrentClassifier(input_size=3, num_classes=2, seq_len=None, head="flatten")
    line = one_line(raised.value)
    assert line.startswith("model.head='flatten' is not allowed") and "differ in length" in line and "\n" not in line
    assert RecurrentClassifier(input_size=3, num_classes=2, seq_len=4, head="flatten").fc.in_features == 256 * 4


def test_variable_lengths_take_the_eager_step_even_on_a_gpu():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])
    cuda = torch.device("cuda")  # only named: graph_blocker never touches the device
    assert graph_blocker(cuda, "fp32", optimizer, None) is None
    assert "differ in length" in graph_blocker(cuda, "fp32", optimizer, None, variable_lengths=True)
