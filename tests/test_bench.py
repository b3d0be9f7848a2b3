"""The benchmark through its CLI on synthetic data: both loops, the same step, a bench.json."""

import json

import pytest
import torch

from conftest import run_cli
from src.bench import ReferenceImages, epoch_batches
from src.data import make_synthetic

SMALL = ("data=synthetic", "data.num_train=600", "data.val_size=100", "model.hidden_size=8", "bench.steps=5",
         "bench.warmup=2", "trainer.device=cpu")


def test_bench_compares_both_loops_and_writes_bench_json(tmp_path):
    result = run_cli(*SMALL, "bench.epochs=3", "optimizer.lr=0.01", f"hydra.run.dir={tmp_path}", module="src.bench")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    for key in ("reference_s_per_step", "framework_s_per_step", "speedup", "device", "torch_version",
                "reference_s_per_epoch", "framework_s_per_epoch", "reference_test_acc", "framework_test_acc"):
        assert key in report
    assert report["speedup"] == pytest.approx(report["reference_s_per_step"] / report["framework_s_per_step"])
    assert report["device"] == "cpu" and report["torch_version"] == torch.__version__
    assert report["framework_test_acc"] > 0.5 and report["reference_test_acc"] > 0.5  # both really trained
    assert "speedup (reference s/step / framework s/step)" in result.stdout


def test_bench_one_loop_and_bad_choice(tmp_path):
    result = run_cli(*SMALL, "bench.which=framework", "bench.epochs=0", f"hydra.run.dir={tmp_path}", module="src.bench")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    assert "framework_s_per_step" in report and "reference_s_per_step" not in report and "speedup" not in report
    bad = run_cli(*SMALL, "bench.which=fastest", f"hydra.run.dir={tmp_path / 'bad'}", module="src.bench")
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1] == (
        "error: bench.which='fastest' is not allowed: expected reference | framework | both")


def test_bench_refuses_fp16_without_cuda_like_a_run(tmp_path):
    result = run_cli(*SMALL, "trainer.precision=fp16-mixed", f"hydra.run.dir={tmp_path}", module="src.bench")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: trainer.precision='fp16-mixed'")


@pytest.mark.parametrize("view", ["rows", "pixels"])
def test_reference_loop_sees_the_same_data_as_the_framework(view):
    """Same images, same scaling, same view: only the route (PIL + ToTensor + DataLoader) differs."""
    data = make_synthetic(64, 8, 6, 5, 3, 0.2, 0, batch_size=64, eval_batch_size=8, val_size=8, view=view,
                          permutation_seed=0, normalize=True)
    reference = ReferenceImages(data.train_x, data.train_y, data.mean, data.std)
    image, label = reference[3]
    expected = data.as_sequences(data.train_x[3:4])[0]
    assert torch.allclose(data.apply_view(image)[0], expected, atol=1e-6) and label == int(data.train_y[3])
    batches = list(epoch_batches("reference", data, torch.Generator().manual_seed(0), num_workers=0))
    labels = torch.cat([y for _, y in batches])
    assert torch.equal(labels.sort().values, data.train_y.sort().values)
    assert batches[0][0].shape == (len(batches[0][1]), data.seq_len, data.input_size)


def test_step_check_compares_the_framework_step_with_eager_steps(tmp_path):
    # On a CPU both steps are eager: the same start and batches must give the same losses, bit for bit.
    result = run_cli(*SMALL, "bench.which=framework", "bench.epochs=0", "bench.step_check=12",
                     f"hydra.run.dir={tmp_path}", module="src.bench")
    assert result.returncode == 0, result.stderr
    check = json.loads((tmp_path / "bench.json").read_text())["step_check"]
    assert check["steps"] == 12 and check["framework_step"] == "eager"
    assert check["max_abs_loss_diff_to_eager"] == 0.0 and 0 < check["last_eager_loss"] < 2
    assert "eager step against eager steps over 12 steps: largest loss difference 0 " in result.stdout
    bad = run_cli(*SMALL, "bench.step_check=-1", f"hydra.run.dir={tmp_path / 'bad'}", module="src.bench")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1] == (
        "error: bench.step_check=-1 is not allowed: expected an integer >= 0 (0: no check)")


def test_step_profile_needs_a_gpu_and_says_so_in_one_line(tmp_path):
    result = run_cli(*SMALL, "trainer.device=cpu", f"hydra.run.dir={tmp_path}", module="src.step_profile")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: trainer.device='cpu' is not allowed: expected cuda" in result.stderr
