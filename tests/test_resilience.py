"""Nothing lost, nothing silent: resume after SIGKILL, divergence, and a table of bad inputs."""

import gzip
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, run_cli, write_idx

# ~1 s per epoch on 2 cores: long enough to kill a run in the middle of one.
LONG = ("data=synthetic", "data.num_train=12000", "model.hidden_size=16", "model.dropout=0.2",
        "trainer.epochs=4", "trainer.log_every_n_steps=10", "trainer.device=cpu")


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def kill_mid_epoch(run_dir: Path) -> None:
    """Start a real training, SIGKILL it once the first epoch's checkpoint exists, mid-second-epoch."""
    process = subprocess.Popen([sys.executable, "-m", "src.run", *LONG, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (run_dir / "metrics.json").exists()


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert run_cli(*LONG, f"hydra.run.dir={whole}").returncode == 0
    kill_mid_epoch(resumed)
    assert torch.load(resumed / "checkpoints" / "last.pt", weights_only=False)["state"]["epoch"] >= 1
    result = run_cli(*LONG, "trainer.resume=true", f"hydra.run.dir={resumed}")
    assert result.returncode == 0, result.stderr
    assert "resumed from" in result.stdout
    expected, got = metrics_of(whole), metrics_of(resumed)
    assert got["test_acc"] == expected["test_acc"] and got["epochs_completed"] == 4
    assert got["test_loss"] == pytest.approx(expected["test_loss"], abs=1e-6)
    assert got["best_val_acc"] == expected["best_val_acc"]

    events = EventAccumulator(str(resumed)).Reload()  # both processes' event files, purged
    for tag in events.Tags()["scalars"]:
        steps = [event.step for event in events.Scalars(tag)]
        assert steps == sorted(set(steps)), f"{tag} has duplicate or out-of-order steps"
    assert [event.value for event in events.Scalars("epoch")] == [0, 1, 2, 3, 4]

    # Resuming a finished run does nothing; resuming with another model shape is refused.
    again = run_cli(*LONG, "trainer.resume=true", f"hydra.run.dir={resumed}")
    assert again.returncode == 0 and "already finished" in again.stdout
    other = run_cli(*LONG, "trainer.resume=true", "model.hidden_size=32", f"hydra.run.dir={resumed}")
    assert other.returncode != 0 and "model.hidden_size=16" in other.stderr.strip().splitlines()[-1]


def test_resume_with_more_epochs_trains_a_finished_run_further(tmp_path):
    short = ("data=synthetic", "model.hidden_size=8", f"hydra.run.dir={tmp_path}")
    assert run_cli(*short, "trainer.epochs=1").returncode == 0
    longer = run_cli(*short, "trainer.epochs=2", "trainer.resume=true")
    assert longer.returncode == 0 and "resumed from" in longer.stdout
    assert metrics_of(tmp_path)["epochs_completed"] == 2


def test_ctrl_c_is_one_line(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "src.run", *LONG, f"hydra.run.dir={tmp_path}"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "checkpoints" / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: interrupted")


def test_divergence_stops_the_run_and_exits_normally(tmp_path):
    result = run_cli("data=synthetic", "model.hidden_size=16", "optimizer=sgd", "optimizer.lr=1e6",
                     "trainer.epochs=3", "trainer.log_every_n_steps=5", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    metrics = metrics_of(tmp_path)
    assert metrics["status"] == "diverged" and metrics["epochs_completed"] == 0
    assert metrics["diverged_at"] == {"epoch": 1, "step": 5}
    assert "diverged: training loss" in result.stdout


def test_a_resumed_sweep_skips_finished_jobs_and_continues_the_others(tmp_path):
    sweep = ("-m", "data=synthetic", "model.hidden_size=8,16", f"hydra.sweep.dir={tmp_path}")
    assert run_cli(*sweep, "trainer.epochs=1").returncode == 0
    jobs = sorted(path for path in tmp_path.iterdir() if path.is_dir())
    assert [job.name.split("_")[0] for job in jobs] == ["0", "1"]
    (jobs[1] / "metrics.json").unlink()  # job 1 "was killed" after its checkpoint, before its metrics
    finished = (jobs[0] / "metrics.json").stat().st_mtime_ns
    result = run_cli(*sweep, "trainer.epochs=1", "trainer.resume=true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already finished") == 1 and result.stdout.count("resumed from") == 1
    assert sorted(path for path in tmp_path.iterdir() if path.is_dir()) == jobs  # the same job directories
    assert (jobs[0] / "metrics.json").stat().st_mtime_ns == finished
    assert [metrics_of(job)["status"] for job in jobs] == ["ok", "ok"]


def corrupt_magic(root: Path) -> None:
    with gzip.open(root / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"\x00\x00\x99\x07" + bytes(100))


def mismatched_lengths(root: Path) -> None:
    write_idx(root / "short", train=500)
    (root / "short" / "train-labels-idx1-ubyte.gz").replace(root / "train-labels-idx1-ubyte.gz")


def truncated(root: Path) -> None:
    data = gzip.decompress((root / "t10k-images-idx3-ubyte.gz").read_bytes())
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(data[: len(data) // 2]))


IDX = ("data=mnist", "data.root={root}", "data.download=false", "data.val_size=100")
BAD_INPUTS = [
    # (overrides, how to spoil the IDX files or None, what the one line must contain)
    (("model=grux",), None, ["model/grux", "gru lstm rnn"]),
    (("optimizer=adamx",), None, ["optimizer/adamx", "adam adamw rmsprop sgd"]),
    (("data=imagenet",), None, ["data/imagenet", "fashion_mnist"]),
    (("+experiment=nope",), None, ["experiment/nope", "lstm_rows_last"]),
    (("model.hiden_size=3",), None, ["hiden_size", "RecurrentSchema"]),
    (("trainer.epoch=3",), None, ["trainer.epoch", "TrainerSchema"]),
    (("model.hidden_size=abc",), None, ["model.hidden_size=abc", "Integer"]),
    (("model.hidden_size=1.5",), None, ["model.hidden_size=1.5", "Integer"]),
    (("trainer.progress=maybe",), None, ["trainer.progress=maybe", "bool"]),
    (("model.hidden_size=0",), None, ["model.hidden_size=0", "an integer > 0"]),
    (("model.num_layers=-1",), None, ["model.num_layers=-1", "an integer > 0"]),
    (("model.dropout=1.0",), None, ["model.dropout=1.0", "[0, 1)"]),
    (("model.dropout=-0.1",), None, ["model.dropout=-0.1", "[0, 1)"]),
    (("model.head=first",), None, ["model.head='first'", "last | flatten | mean | max"]),
    (("model.cell=transformer",), None, ["model.cell='transformer'", "rnn | gru | lstm"]),
    (("model.init=zeros",), None, ["model.init='zeros'", "orthogonal | torch"]),
    (("data.view=diagonal",), None, ["data.view='diagonal'", "rows | columns | pixels | permuted"]),
    (("data.batch_size=0",), None, ["data.batch_size=0", "an integer > 0"]),
    (("data.val_size=5000",), None, ["data.val_size=5000", "below the training set size 2000"]),
    (("data=mnist", "data.dataset=cifar10"), None, ["data.dataset='cifar10'", "mnist | fashion_mnist | kmnist"]),
    (("optimizer.lr=-1",), None, ["optimizer.lr=-1", "a number > 0"]),
    (("optimizer=sgd", "optimizer.lr=0"), None, ["optimizer.lr=0", "a number > 0"]),
    (("trainer.epochs=-2",), None, ["trainer.epochs=-2", "an integer >= 0"]),
    (("trainer.grad_clip_norm=0",), None, ["trainer.grad_clip_norm=0", "null or a number > 0"]),
    (("trainer.device=tpu",), None, ["trainer.device='tpu'", "auto | cpu | cuda | cuda:N"]),
    (("trainer.device=cuda",), None, ["trainer.device='cuda'", "no CUDA device"]),
    (("trainer.num_threads=0",), None, ["trainer.num_threads=0", "null or an integer > 0"]),
    (("trainer.max_loss=0",), None, ["trainer.max_loss=0", "null or a number > 0"]),
    (("trainer.log_every_n_steps=0",), None, ["trainer.log_every_n_steps=0", "an integer > 0"]),
    (("trainer.data_placement=gpu",), None, ["trainer.data_placement='gpu'", "auto | device | host"]),
    (("trainer.precision=fp8",), None, ["trainer.precision='fp8'", "fp32 | bf16 | fp16-mixed"]),
    (("trainer.device=cpu", "trainer.precision=fp16-mixed"), None, ["trainer.precision='fp16-mixed'", "needs a CUDA device"]),
    (("trainer.cuda_graph=maybe",), None, ["trainer.cuda_graph='maybe'", "auto | true | false"]),
    (("trainer.device=cpu", "trainer.cuda_graph=true"), None, ["trainer.cuda_graph=True", "CUDA graphs need a CUDA device"]),
    (("trainer.early_stopping_patience=0",), None, ["trainer.early_stopping_patience=0", "null or an integer > 0"]),
    (("scheduler=exponential",), None, ["scheduler/exponential", "cosine none onecycle plateau step"]),
    (("data=mnist", "data.root={root}/empty", "data.download=false"), None,
     ["train-images-idx3-ubyte", "empty/MNIST/raw", "download=false"]),
    (IDX, corrupt_magic, ["train-images-idx3-ubyte", "cannot decode"]),
    (IDX, truncated, ["t10k-images-idx3-ubyte", "cannot decode"]),
    (IDX, mismatched_lengths, ["MNIST/raw", "images (600) and labels (500) differ"]),
    (("hydra.run.dir={root}/train-images-idx3-ubyte.gz/run",), None, ["cannot write", "Not a directory"]),
]


@pytest.mark.parametrize(
    ("overrides", "spoil", "expected"), BAD_INPUTS,
    ids=[" ".join(o[-1:]) + (f" {s.__name__}" if s else "") for o, s, _ in BAD_INPUTS],
)
def test_bad_input_is_one_line_naming_key_and_allowed_values(tmp_path, overrides, spoil, expected):
    root = write_idx(tmp_path / "data")
    if spoil:
        spoil(root)
    overrides = [o.format(root=root) for o in overrides]
    if not any(o.startswith("hydra.run.dir") for o in overrides):
        overrides.append(f"hydra.run.dir={tmp_path / 'run'}")
    result = run_cli("data=synthetic", "model.hidden_size=8", *overrides)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for fragment in expected:
        assert fragment in last
    assert not (tmp_path / "run" / "metrics.json").exists()
