"""Series data: batches cut to their longest series, bucketing, normalisation, patches and strides, pictures."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from src.config.schema import SeriesSchema
from src.data.padded import Padded
from src.data.series_assembly import Split, assemble, normalize, reshape_steps
from src.runs import pictures

SETTINGS = dict(batch_size=4, eval_batch_size=5, val_size=6, patch=1, stride=1, bucket=True, split_seed=0)


def split(count: int, seed: int, steps: int = 20, channels: int = 2) -> Split:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (count,), generator=generator)
    lengths[0] = steps
    x = 3 + 2 * torch.randn(count, steps, channels, generator=generator)  # (N, T, F)
    x = x * (torch.arange(steps) < lengths.unsqueeze(1)).unsqueeze(-1)
    return Split(x, lengths, np.array([str(k % 3) for k in range(count)]))


def data_of(normalize: str = "none", **changes):
    settings = SeriesSchema(normalize=normalize, **{**SETTINGS, **changes})
    return assemble(split(40, 1), split(15, 2), ("0", "1", "2"), "test", settings)


def test_batches_are_cut_to_their_longest_series_and_carry_the_lengths():
    data = data_of()
    seen = []
    for x, y in data.batches("train", shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert isinstance(x, Padded) and x.values.shape[1] == int(x.lengths.max()) and len(y) == len(x.lengths)
        seen.append(y)
    assert torch.equal(torch.cat(seen).sort().values, data.train_y.sort().values)  # every series once
    # Evaluation keeps the split's order, so predictions line up with the labels.
    x, y = next(data.batches("test"))
    assert torch.equal(y, data.test_y[:5]) and torch.equal(x.lengths, data.test_lengths[:5])


def test_bucketing_groups_similar_lengths_and_still_shuffles():
    data = data_of(val_size=2)  # 38 training series in 10 batches
    generator = torch.Generator().manual_seed(0)
    bucketed = [x.lengths for x, _ in data.batches("train", shuffle=True, generator=generator)]
    next_epoch = [x.lengths for x, _ in data.batches("train", shuffle=True, generator=generator)]
    unbucketed = [x.lengths for x, _ in replace(data, bucket=False).batches("train", True, generator)]
    padding = [sum(int(b.max() * len(b) - b.sum()) for b in batches) for batches in (bucketed, unbucketed)]
    assert padding[0] < padding[1]  # sorted within windows: less padding to carry
    assert [b.tolist() for b in bucketed] != [b.tolist() for b in next_epoch]  # each epoch its own order


def test_channel_normalisation_uses_the_training_split_and_leaves_padding_zero():
    data = data_of("channel")
    valid = torch.arange(data.train_x.shape[1]) < data.train_lengths.unsqueeze(1)  # (N, T)
    steps = data.train_x[valid]  # (valid steps, F)
    assert torch.allclose(steps.mean(0), torch.zeros(2), atol=1e-5) and torch.allclose(steps.std(0), torch.ones(2))
    assert (
        data.train_x[~valid].abs().max() == 0
        and data.test_x[~(torch.arange(20) < data.test_lengths[:, None])].abs().max() == 0
    )
    test_steps = data.test_x[torch.arange(20) < data.test_lengths.unsqueeze(1)]
    assert not torch.allclose(
        test_steps.mean(0), torch.zeros(2), atol=1e-3
    )  # the test split's own statistics are not used


def test_series_normalisation_gives_each_series_zero_mean_and_unit_std():
    raw = split(10, 3)
    scaled = normalize({"train": raw}, "series")["train"]
    for values, length in zip(scaled.x, scaled.lengths.tolist(), strict=True):
        if length > 1:
            assert torch.allclose(values[:length].mean(0), torch.zeros(2), atol=1e-5)
            assert torch.allclose(values[:length].std(0), torch.ones(2), atol=1e-4)
        assert values[length:].abs().sum() == 0


def test_stride_then_patch_reshape_steps_and_lengths():
    x = torch.arange(1, 11, dtype=torch.float).reshape(1, 10, 1).repeat(2, 1, 2)  # (2, 10, 2): steps 1..10
    x[1, 7:] = 0
    shaped = reshape_steps(Split(x, torch.tensor([10, 7]), np.array(["a", "b"])), patch=2, stride=3)
    # every 3rd step: 1, 4, 7, 10 (and 1, 4, 7 for the series of 7); patches of two steps, 4 features each
    assert shaped.x.shape == (2, 2, 4) and shaped.lengths.tolist() == [2, 2]
    assert shaped.x[0].tolist() == [[1, 1, 4, 4], [7, 7, 10, 10]]
    assert shaped.x[1].tolist() == [[1, 1, 4, 4], [7, 7, 0, 0]]
    data = data_of(patch=4, stride=2)
    assert data.input_size == 8 and data.view == "series in patches of 4" and data.train_x.shape[1] == 3


def test_series_grid_draws_lines_or_a_heat_map_with_class_names():
    few = pictures.series_grid([torch.randn(9, 3), torch.randn(5, 3)], ["walk", "run"], ["walk", "sit"])
    first, second = few.axes[:2]
    assert len(first.lines) == 3 and first.get_title() == "walk / walk" and second.get_title() == "run / sit"
    assert second.title.get_color() == "red" and "1 of 2 wrong" in few.texts[0].get_text()
    many = pictures.series_grid([torch.randn(30, 12)], ["a"], ["a"])
    assert len(many.axes[0].images) == 1 and not many.axes[0].lines


@pytest.mark.parametrize("count", [25, 3])
def test_pictures_take_series_spread_over_the_split(count):
    data = data_of()
    drawn, x, labels = data.series("test", count)
    assert len(drawn) == len(labels) == min(count, 15) and isinstance(x, Padded)
    assert [len(d) for d in drawn] == x.lengths.tolist()
