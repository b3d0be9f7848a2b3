"""The step choice, and what the CUDA-graph step relies on that a CPU can check: schedulers update a
GPU-resident learning rate in place, and a graph run's checkpoint resumes anywhere.

The capture and replay themselves need a GPU: the tests marked gpu compare them with eager steps there, and
two jobs capturing at once on their own streams (as packed jobs do) with each alone;
`python -m src.bench trainer.device=cuda bench.step_check=300` compares at full size (experiments/performance/).
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR, ReduceLROnPlateau, StepLR

from src.benchmarking.step_check import exact_kernels
from src.config.choices import Interval
from src.config.errors import ConfigError
from src.models.recurrent import RecurrentClassifier
from src.runs.atomic import BackgroundWriter
from src.training.building import INIT_LOCK
from src.training.checkpoint_reader import read_checkpoint
from src.training.checkpoints import TrainState, checkpoint_bytes, restore, save_checkpoint
from src.training.devices import own_stream
from src.training.schedules import Schedule
from src.training.steps import GraphedStep, make_capturable, make_step, train_step, use_cuda_graph

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU: only the choice is tested


def tiny() -> tuple[RecurrentClassifier, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return RecurrentClassifier(5, 3, 6, hidden_size=8), torch.randn(16, 6, 5), torch.randint(3, (16,))


def test_auto_uses_the_graph_exactly_where_it_can_work():
    model, _, _ = tiny()
    adam, adamw = torch.optim.Adam(model.parameters()), torch.optim.AdamW(model.parameters())
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)

    def per_step(scheduler) -> Schedule:
        return Schedule(scheduler, Interval.step)

    assert use_cuda_graph("auto", CUDA, "fp32", adam, None) and use_cuda_graph("auto", CUDA, "bf16", adamw, None)
    assert use_cuda_graph("always", CUDA, "fp32", adam, Schedule(CosineAnnealingLR(adam, 5), Interval.epoch))
    assert not use_cuda_graph("auto", CPU, "fp32", adam, None)
    assert not use_cuda_graph("never", CUDA, "fp32", adam, None)
    assert not use_cuda_graph("auto", CUDA, "fp16-mixed", adam, None)  # the scaler syncs every step
    assert not use_cuda_graph("auto", CUDA, "fp32", sgd, None)  # its lr cannot be a GPU tensor
    assert not use_cuda_graph("auto", CUDA, "fp32", adam, per_step(OneCycleLR(adam, 0.01, total_steps=10)))
    assert use_cuda_graph(
        "auto", CUDA, "fp32", adam, per_step(OneCycleLR(adam, 0.01, total_steps=10, cycle_momentum=False))
    )
    with pytest.raises(
        ConfigError,
        match="trainer.cuda_graph='always' is not allowed: expected never or auto here: the graph step needs Adam",
    ):
        use_cuda_graph("always", CUDA, "fp32", sgd, None)


@pytest.mark.parametrize(
    "make_scheduler",
    [
        lambda o: CosineAnnealingLR(o, T_max=4),
        lambda o: StepLR(o, step_size=1, gamma=0.5),
        lambda o: ReduceLROnPlateau(o, mode="max", patience=0, factor=0.5),
    ],
    ids=["cosine", "step", "plateau"],
)
def test_schedulers_update_a_capturable_lr_in_place(make_scheduler):
    model, _, _ = tiny()
    plain = torch.optim.Adam(model.parameters(), lr=0.01)
    captured = torch.optim.Adam(model.parameters(), lr=0.01)
    make_capturable(captured, CPU)
    lr = captured.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and captured.param_groups[0]["capturable"]
    schedulers = make_scheduler(plain), make_scheduler(captured)
    for _ in range(3):
        for scheduler in schedulers:
            scheduler.optimizer.step()  # no gradients: changes nothing, keeps the call order torch expects
            scheduler.step(0.5) if isinstance(scheduler, ReduceLROnPlateau) else scheduler.step()
        # A replayed graph reads this very tensor: a scheduler that replaced it would go unseen.
        assert captured.param_groups[0]["lr"] is lr
        assert lr.item() == pytest.approx(plain.param_groups[0]["lr"], rel=1e-6)
    assert lr.item() < 0.01


def test_a_graph_runs_checkpoint_resumes_with_plain_settings(tmp_path):
    model, x, y = tiny()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    train_step(model, x, y, optimizer, 1.0)
    make_capturable(optimizer, CPU)  # what a CUDA-graph run saves: lr a tensor, capturable=True
    with BackgroundWriter() as files:
        save_checkpoint(
            tmp_path,
            checkpoint_bytes(model, optimizer, None, TrainState(epoch=1, step=1), torch.Generator(), {}),
            files,
            is_best=False,
        )

    resumed_model, _, _ = tiny()
    resumed = torch.optim.Adam(resumed_model.parameters(), lr=0.01)
    restore(torch.load(tmp_path / "last.pt", weights_only=True), resumed_model, resumed, None, torch.Generator())
    lr = resumed.param_groups[0]["lr"]
    assert isinstance(lr, float) and lr == pytest.approx(0.01) and resumed.param_groups[0]["capturable"] is False
    # capturable=True on a CPU would refuse to step; the restored optimizer steps like the saved one would.
    step = make_step(resumed_model, resumed, 1.0, "fp32", len(y), cuda_graph=False)
    loss, _ = step(x, y)
    assert torch.isfinite(loss) and resumed.state[next(iter(resumed.state))]["step"].item() == 2


def test_the_loss_scalers_scale_is_checkpointed_and_restored(tmp_path):
    """fp16-mixed's GradScaler (CUDA's; CPU's has the same state) after a skipped step and some growth."""
    model, x, y = tiny()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
    train_step(model, x, y, optimizer, 1.0, scaler=scaler)
    scaler.update(new_scale=torch.tensor(96.0))  # as after an overflow and a growth
    saved = scaler.state_dict()
    assert saved["scale"] == 96.0 and saved["_growth_tracker"] == 1
    with BackgroundWriter() as files:
        data = checkpoint_bytes(model, optimizer, None, TrainState(), torch.Generator(), {}, scaler)
        save_checkpoint(tmp_path, data, files, is_best=False)
    resumed = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
    checkpoint = read_checkpoint(tmp_path / "last.pt")  # weights only: the scale is plain numbers
    restore(checkpoint, model, torch.optim.Adam(model.parameters(), lr=0.01), None, torch.Generator(), resumed)
    assert resumed.state_dict() == saved
    # A checkpoint without a scaler (fp32, bf16, or written before the scale was saved) leaves it as made.
    fresh = torch.amp.GradScaler("cpu", init_scale=1024.0)
    restore({**checkpoint, "scaler": None}, model, optimizer, None, torch.Generator(), fresh)
    assert fresh.get_scale() == 1024.0
    with pytest.raises(ValueError, match="needs its loss scaler"):  # fp16 without one would underflow silently
        make_step(model, optimizer, 1.0, "fp16-mixed", len(y), cuda_graph=False)


def test_zeroing_gradients_in_place_steps_like_setting_them_to_none():
    # The graph step's eager batches zero the gradient buffers the graph writes into instead of dropping them.
    results = []
    for set_to_none in (True, False):
        model, x, y = tiny()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(3):
            train_step(model, x, y, optimizer, 1.0, set_to_none=set_to_none)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(*results)


@pytest.mark.gpu
def test_the_graph_step_replays_the_eager_step_with_the_same_capturable_adam():
    def losses(graph: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = RecurrentClassifier(5, 3, 6, hidden_size=16).to(CUDA)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        if graph:
            step = make_step(model, optimizer, 1.0, "fp32", 32, cuda_graph=True)
        else:
            make_capturable(optimizer, CUDA)
            step = make_step(model, optimizer, 1.0, "fp32", 32, cuda_graph=False)
        generator = torch.Generator().manual_seed(1)
        batches = [
            (torch.randn(32, 6, 5, generator=generator), torch.randint(3, (32,), generator=generator))
            for _ in range(12)
        ]
        return torch.stack([step(x.to(CUDA), y.to(CUDA))[0].clone() for x, y in batches]).cpu()

    with exact_kernels():
        graphed, eager = losses(graph=True), losses(graph=False)
    assert torch.equal(graphed, eager), (graphed - eager).abs().max()
    model = RecurrentClassifier(5, 3, 6, hidden_size=16).to(CUDA)
    assert isinstance(
        make_step(model, torch.optim.Adam(model.parameters()), 1.0, "fp32", 32, cuda_graph=True), GraphedStep
    )


def graph_losses(seed: int, start: threading.Barrier | None = None) -> torch.Tensor:
    """12 graph steps of a seeded model on its own stream, as a packed job takes them; the losses."""
    with INIT_LOCK:  # the jobs' threads share torch's global generator, as packed jobs do
        torch.manual_seed(seed)
        model = RecurrentClassifier(5, 3, 6, hidden_size=16).to(CUDA)
    generator = torch.Generator().manual_seed(seed)
    batches = [
        (torch.randn(32, 6, 5, generator=generator), torch.randint(3, (32,), generator=generator)) for _ in range(12)
    ]
    with own_stream(CUDA):
        step = make_step(model, torch.optim.Adam(model.parameters(), lr=0.01), 1.0, "fp32", 32, cuda_graph=True)
        if start is not None:
            start.wait()  # both jobs warm up and capture at the same time
        losses = torch.stack([step(x.to(CUDA), y.to(CUDA))[0].clone() for x, y in batches])
        torch.cuda.current_stream().synchronize()
    return losses.cpu()


@pytest.mark.gpu
def test_jobs_capturing_their_graphs_at_once_on_their_own_streams_get_their_results_alone():
    with exact_kernels():
        alone = [graph_losses(seed) for seed in (0, 1)]
        start = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            together = list(pool.map(lambda seed: graph_losses(seed, start), (0, 1)))
    for seed in (0, 1):
        assert torch.equal(together[seed], alone[seed]), (seed, (together[seed] - alone[seed]).abs().max())
    assert not torch.equal(alone[0], alone[1])  # two different jobs, not one computed twice


def test_the_background_writer_reports_a_failed_write_and_keeps_an_error_in_flight(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError) as raised, BackgroundWriter() as files:
        files.submit(blocker / "last.pt", b"x")  # a file cannot hold a directory: the write fails on close
    assert raised.value.filename == str(blocker / "last.pt") and not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(KeyError), BackgroundWriter() as files:
        files.submit(blocker / "last.pt", b"x")
        raise KeyError("the training error")  # not replaced by the writer's error
