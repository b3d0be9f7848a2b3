"""The recurrent-FCN family and the attention head: padding never matters, the branch learns what a plain
recurrent stack cannot in a few epochs, and every option is a key with a one-line error."""

import shutil
from pathlib import Path

import pytest
import torch
from test_padding import LENGTHS, padded_batch

from conftest import compose_config
from src.config.errors import ConfigError, one_line
from src.config.schema import validate
from src.data.padded import Padded
from src.models.fcn import MaskedBatchNorm, RecurrentFCN
from src.models.recurrent import RecurrentClassifier


def fcn(**options) -> RecurrentFCN:
    torch.manual_seed(0)
    settings = dict(input_size=3, num_classes=4, seq_len=None, hidden_size=6, filters=(8, 16, 8)) | options
    return RecurrentFCN(**settings)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("head", ["last", "mean", "attention"])
@pytest.mark.parametrize("squeeze_excite", [False, True])
def test_appending_padding_never_changes_the_logits(cell, head, squeeze_excite):
    model = fcn(cell=cell, head=head, squeeze_excite=squeeze_excite, bidirectional=True)
    with torch.no_grad():
        model.train()  # batch norm's running statistics away from their start, from valid steps only
        for _ in range(3):
            model(padded_batch(extra=2))
        model.eval()
        reference = model(padded_batch(extra=0))
        for extra in (1, 7):
            assert torch.allclose(model(padded_batch(extra, seed=extra)), reference, atol=1e-5)
        batch = padded_batch(extra=0)
        for row, length in enumerate(LENGTHS.tolist()):  # each series alone, as a plain tensor
            alone = model(batch.values[row : row + 1, :length])
            assert torch.allclose(alone, reference[row : row + 1], atol=1e-5)


def test_the_attention_head_of_a_recurrent_classifier_ignores_padding_and_learns_its_weights():
    torch.manual_seed(0)
    model = RecurrentClassifier(input_size=3, num_classes=4, seq_len=None, hidden_size=6, head="attention").eval()
    with torch.no_grad():
        reference = model(padded_batch(extra=0))
        assert torch.allclose(model(padded_batch(extra=5, seed=5)), reference, atol=1e-5)
    assert {"attention.project.weight", "attention.score.weight"} <= set(dict(model.named_parameters()))
    fixed = RecurrentClassifier(input_size=3, num_classes=4, seq_len=9, hidden_size=6, head="attention")
    assert fixed(torch.rand(2, 9, 3)).shape == (2, 4)


def test_batch_norm_takes_its_training_statistics_from_valid_steps_only():
    norm = MaskedBatchNorm(2, momentum=1.0)  # momentum 1: the running statistics are this batch's
    values = torch.randn(3, 2, 6)  # (B, C, T)
    lengths = torch.tensor([6, 2, 4])
    valid = (torch.arange(6) < lengths.unsqueeze(1)).unsqueeze(1)  # (B, 1, T)
    out = norm(torch.where(valid, values, torch.tensor(1e3)), valid)
    steps = torch.cat([values[k, :, :n] for k, n in enumerate(lengths.tolist())], dim=1)  # (C, valid steps)
    assert torch.allclose(norm.running_mean, steps.mean(dim=1), atol=1e-5)
    assert torch.allclose(norm.running_var, steps.var(dim=1), atol=1e-4)  # unbiased, as torch keeps it
    normalised = torch.cat([out[k, :, :n] for k, n in enumerate(lengths.tolist())], dim=1)
    assert torch.allclose(normalised.mean(dim=1), torch.zeros(2), atol=1e-5)


def motif_series(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise with one of two six-step motifs of equal mean and energy somewhere in it: told apart by a local
    shape wherever it occurs, what the archive's hard problems are made of. (N, 64, 1), labels (N,)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (count,), generator=generator)
    series = 0.5 * torch.randn(count, 64, 1, generator=generator)
    motifs = torch.tensor([[2.0, -2, 2, -2, 2, -2], [2.0, 2, 2, -2, -2, -2]])
    starts = torch.randint(0, 58, (count,), generator=generator).tolist()
    for row, start in enumerate(starts):
        series[row, start : start + 6, 0] += motifs[labels[row]]
    return series, labels


def accuracy_after_three_epochs(model: torch.nn.Module) -> float:
    x, y = motif_series(256, seed=0)
    test_x, test_y = motif_series(256, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        model.train()
        for index in torch.randperm(len(y), generator=generator).split(32):
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return (model.eval()(test_x).argmax(dim=1) == test_y).float().mean().item()


def test_the_convolutional_branch_learns_local_shapes_that_a_plain_gru_does_not_in_three_epochs():
    torch.manual_seed(0)
    plain = accuracy_after_three_epochs(RecurrentClassifier(1, 2, 64, cell="gru", hidden_size=16, num_layers=1))
    torch.manual_seed(0)
    with_branch = accuracy_after_three_epochs(RecurrentFCN(1, 2, 64, cell="gru", filters=(16, 32, 16), head_dropout=0))
    assert with_branch >= 0.95 and plain <= 0.75, (with_branch, plain)


def test_the_dimension_shuffle_reads_one_step_per_channel():
    model = RecurrentFCN(
        input_size=3, num_classes=2, seq_len=20, hidden_size=5, filters=(4,), kernels=(3,), shuffle=True
    )
    assert model.rnn.input_size == 20  # each step: a channel's 20 values
    seen = []
    model.rnn.register_forward_hook(lambda _, inputs, output: seen.append(inputs[0].shape))
    assert model(torch.rand(2, 20, 3)).shape == (2, 2) and seen == [(2, 3, 20)]
    assert model.fc.in_features == 5 + 4  # the recurrent features beside the branch's last filters


def test_options_that_cannot_work_are_one_line_naming_their_key():
    with pytest.raises(ConfigError) as raised:
        RecurrentFCN(input_size=3, num_classes=2, seq_len=None, shuffle=True)
    assert one_line(raised.value).startswith("model.shuffle=True is not allowed: expected false: these series differ")
    cases = {
        ("model.kernels=[8,5]",): "model.kernels=[8, 5] is not allowed: expected one kernel width per filter count (3)",
        ("model.filters=[]", "model.kernels=[]"): "model.filters=[] is not allowed: expected a non-empty list",
        ("model.filters=[128,0,128]",): "model.filters=[128, 0, 128] is not allowed",
        ("model.head_dropout=1.0",): "model.head_dropout=1.0 is not allowed: expected a number in [0, 1)",
    }
    for overrides, line in cases.items():
        with pytest.raises(ConfigError) as raised:
            validate(compose_config("model=lstm_fcn", *overrides))
        assert one_line(raised.value).startswith(line), one_line(raised.value)


def test_the_family_configs_build_the_published_model():
    for cell in ("lstm", "gru"):
        cfg = compose_config(f"model={cell}_fcn")
        model = RecurrentFCN(**{k: v for k, v in cfg.model.items() if k != "_target_"}, input_size=1, num_classes=2,
                             seq_len=150)  # fmt: skip
        assert model.rnn.mode == cell.upper() and model.rnn.hidden_size == 8 and model.head_dropout.p == 0.8
        assert [block.conv.out_channels for block in model.blocks] == [128, 256, 128]
        assert [block.conv.kernel_size[0] for block in model.blocks] == [8, 5, 3]
        assert model(Padded(torch.rand(2, 150, 1), torch.tensor([150, 90]))).shape == (2, 2)


FCN_RUN = ("model=lstm_fcn", "data=uea", "data.name=ItalyPowerDemand", "model.filters=[8,16,8]", "trainer.device=cpu")


@pytest.fixture(scope="module")
def fcn_run(tmp_path_factory) -> Path:
    """An LSTM-FCN (shuffled, squeeze-and-excite, attention) trained 2 epochs on an archive problem."""
    from conftest import train_in_process

    run_dir = tmp_path_factory.mktemp("fcn_run")
    options = ("model.shuffle=true", "model.squeeze_excite=true", "model.head=attention", "trainer.epochs=2")
    train_in_process(run_dir, *FCN_RUN, *options)
    return run_dir


def test_a_family_run_evaluates_loads_and_resumes_from_its_checkpoint(fcn_run, tmp_path):
    from conftest import metrics_of, train_in_process
    from src.api import load_run
    from src.evaluate import evaluate_checkpoint

    metrics = metrics_of(fcn_run)
    report = evaluate_checkpoint(fcn_run / "checkpoints" / "last.pt", "cpu", None, tmp_path / "evaluated")
    assert report["test_acc"] == pytest.approx(metrics["test_acc"])  # the same model, rebuilt from the file
    run = load_run(fcn_run)
    assert isinstance(run.model, RecurrentFCN) and run.model.shuffle and run.model.blocks[0].excite is not None
    assert run.predict(run.data.test_x[:5]).shape == (5,)
    shutil.copytree(fcn_run, tmp_path / "resumed")
    options = ("model.shuffle=true", "model.squeeze_excite=true", "model.head=attention", "trainer.epochs=3")
    resumed = train_in_process(tmp_path / "resumed", *FCN_RUN, *options, "trainer.resume=true")
    assert resumed["status"] == "ok" and resumed["epochs_completed"] == 3


def test_describe_and_bench_take_the_family(tmp_path, capsys):
    from src.bench import run_bench
    from src.describe import describe

    describe(compose_config(*FCN_RUN, "model.shuffle=true"))
    printed = capsys.readouterr().out
    assert printed.startswith("lstm 1x8 head=last + fcn 8-16-8 (kernels 8-5-3) shuffled, on series: 24 steps")
    assert "rnn x:  (2, 1, 24)" in printed and "logits: (2, 2)" in printed
    bench = ("bench.steps=3", "bench.warmup=1", "bench.epochs=0", "bench.num_workers=0")
    report = run_bench(compose_config(*FCN_RUN, *bench, config_name="bench"), tmp_path)
    assert report["model"].startswith("lstm 1x8 head=last + fcn 8-16-8") and report["speedup"] > 0
    assert report["data"] == "ItalyPowerDemand series batch 32"


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("src.models.fcn.RecurrentFCN", True),
        ("src.models.recurrent.RecurrentClassifier", True),
        ("src.models.fcn.MaskedBatchNorm", False),  # ours, but not a model a config builds
        ("src.models.fcn.torch.load", False),
        ("src.models.fcn.RecurrentFCN.__init__", False),
    ],
)
def test_a_checkpoint_naming_the_family_is_read_only_when_it_names_a_model_we_build(fcn_run, tmp_path, target, safe):
    from src.training.checkpoint_reader import UnsafeCheckpoint, read_checkpoint

    checkpoint = torch.load(fcn_run / "checkpoints" / "last.pt", weights_only=True)
    checkpoint["config"]["model"]["_target_"] = target
    torch.save(checkpoint, tmp_path / "crafted.pt")
    if safe:
        assert read_checkpoint(tmp_path / "crafted.pt")["config"]["model"]["_target_"] == target
        return
    with pytest.raises(UnsafeCheckpoint) as raised:
        read_checkpoint(tmp_path / "crafted.pt")
    assert f"names {target} to build, which is not a seqlab model or data set" in one_line(raised.value)


def test_a_family_added_as_documented_trains_evaluates_loads_resumes_describes_and_benches(tmp_path, monkeypatch):
    """docs/extending.md's steps for a toy family: its module, its schema registered, its YAML; then every
    route a run takes, with nothing else changed."""
    from hydra.core.config_store import ConfigStore
    from toy_family import MeanClassifier, ToySchema

    from conftest import ROOT, metrics_of, train_in_process
    from src.api import load_run
    from src.bench import run_bench
    from src.config import schema
    from src.describe import describe
    from src.evaluate import evaluate_checkpoint

    monkeypatch.setitem(schema.MODEL_SCHEMAS, "toy_model", ToySchema)
    ConfigStore.instance().store(group="schema", name="toy_model", node=ToySchema)
    family = (f"hydra.searchpath=[file://{ROOT / 'tests' / 'toy_family'}]", "model=toy")
    run = (*family, "data=uea", "data.name=ItalyPowerDemand", "trainer.device=cpu", "trainer.epochs=2")
    train_in_process(tmp_path / "run", *run)
    assert metrics_of(tmp_path / "run")["status"] == "ok"
    evaluated = evaluate_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", "cpu", None, tmp_path / "eval")
    assert evaluated["test_acc"] == pytest.approx(metrics_of(tmp_path / "run")["test_acc"])
    loaded = load_run(tmp_path / "run")
    assert isinstance(loaded.model, MeanClassifier) and loaded.model.step.out_features == 6
    assert (
        train_in_process(tmp_path / "run", *run[:-1], "trainer.epochs=3", "trainer.resume=true")["epochs_completed"]
        == 3
    )
    describe(compose_config(*run))
    bench = ("bench.steps=2", "bench.warmup=1", "bench.epochs=0", "bench.num_workers=0")
    assert run_bench(compose_config(*run, *bench, config_name="bench"), tmp_path / "bench")["speedup"] > 0
