"""The benchmark in-process on synthetic data: both loops, the same step, a bench.json; the step check."""

import json

import pytest
import torch

from conftest import compose_config
from src.bench import run_bench, summary_lines
from src.benchmarking.loop_timing import ReferenceImages, epoch_batches
from src.benchmarking.step_check import check_step
from src.config.errors import ConfigError
from src.data.images import make_synthetic
from src.models.recurrent import RecurrentClassifier
from src.training.steps import make_step

SMALL = (
    "data=synthetic",
    "data.num_train=600",
    "data.val_size=100",
    "model.hidden_size=8",
    "bench.steps=5",
    "bench.warmup=2",
    "trainer.device=cpu",
)


def bench(tmp_path, *overrides: str) -> dict:
    return run_bench(compose_config(*SMALL, *overrides, config_name="bench"), tmp_path)


def test_bench_compares_both_loops_and_writes_bench_json(tmp_path):
    report = bench(tmp_path, "bench.epochs=3", "optimizer.lr=0.01")
    assert json.loads((tmp_path / "bench.json").read_text()) == report
    assert report["speedup"] == pytest.approx(report["reference_s_per_step"] / report["framework_s_per_step"])
    assert report["device"] == "cpu" and report["torch_version"] == torch.__version__
    assert report["framework_test_acc"] > 0.5 and report["reference_test_acc"] > 0.5  # both really trained
    assert "speedup (reference s/step / framework s/step)" in "\n".join(summary_lines(report))


def test_bench_one_loop_and_bad_values(tmp_path):
    report = bench(tmp_path, "bench.which=framework", "bench.epochs=0")
    assert "framework_s_per_step" in report and "reference_s_per_step" not in report and "speedup" not in report
    with pytest.raises(
        ConfigError, match=r"^bench.which='fastest' is not allowed: expected reference \| framework \| both$"
    ):
        bench(tmp_path, "bench.which=fastest")
    with pytest.raises(
        ConfigError, match=r"^bench.step_check=-1 is not allowed: expected an integer >= 0 \(0: no check\)$"
    ):
        bench(tmp_path, "bench.step_check=-1")
    for key in ("warmup", "epochs", "num_workers"):
        with pytest.raises(ConfigError, match=rf"^bench.{key}=-1 is not allowed: expected an integer >= 0$"):
            bench(tmp_path, f"bench.{key}=-1")
    with pytest.raises(ConfigError, match="^trainer.precision='fp16-mixed'"):
        bench(tmp_path, "trainer.precision=fp16-mixed")


@pytest.mark.parametrize("view", ["rows", "pixels"])
def test_reference_loop_sees_the_same_data_as_the_framework(view):
    """Same images, same scaling, same view: only the route (PIL + ToTensor + DataLoader) differs."""
    data = make_synthetic(
        64,
        8,
        6,
        5,
        3,
        0.2,
        0,
        batch_size=64,
        eval_batch_size=8,
        val_size=8,
        view=view,
        permutation_seed=0,
        normalize=True,
    )
    reference = ReferenceImages(data.train_x, data.train_y, data.mean, data.std)
    image, label = reference[3]
    expected = data.as_sequences(data.train_x[3:4])[0]
    assert torch.allclose(data.apply_view(image)[0], expected, atol=1e-6) and label == int(data.train_y[3])
    batches = list(epoch_batches("reference", data, torch.Generator().manual_seed(0), num_workers=0))
    labels = torch.cat([y for _, y in batches])
    assert torch.equal(labels.sort().values, data.train_y.sort().values)
    assert batches[0][0].shape == (len(batches[0][1]), data.seq_len, data.input_size)


def test_step_check_reports_zero_for_the_same_step_and_the_difference_for_another():
    data = make_synthetic(
        300,
        20,
        6,
        5,
        3,
        0.2,
        0,
        batch_size=32,
        eval_batch_size=20,
        val_size=20,
        view="rows",
        permutation_seed=0,
        normalize=True,
    )

    def fresh(lr: float, clip: float | None = 1.0):
        def build():
            torch.manual_seed(0)
            model = RecurrentClassifier(5, 3, 6, hidden_size=8)
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            return model, make_step(model, optimizer, clip, "fp32", data.batch_size, cuda_graph=False)

        return build

    same = check_step({"framework": fresh(0.01), "eager": fresh(0.01)}, data, steps=12, seed=0)
    assert same["framework_step"] == "eager" and same["steps"] == 12
    assert same["max_abs_loss_diff_to_eager"] == 0.0 and 0 < same["last_eager_loss"] < 2
    other = check_step({"framework": fresh(0.01), "eager": fresh(0.02)}, data, steps=12, seed=0)
    assert other["max_abs_loss_diff_to_eager"] > 1e-4  # a step that differs is caught
    assert other["max_rel_loss_diff_to_eager"] > 0


def test_step_profile_needs_a_gpu_and_says_so_in_one_line():
    from src.config.errors import one_line
    from src.step_profile import main

    with pytest.raises(ConfigError) as raised:
        main.__wrapped__(compose_config(*SMALL, config_name="bench"))
    assert one_line(raised.value).startswith("trainer.device='cpu' is not allowed: expected cuda")
