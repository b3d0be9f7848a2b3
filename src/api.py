"""`from src.api import train, load_run, tune`: train from Python (a notebook) with the configs, validation and
job code of `python -m src.run`, and get back a `Run` that shows its pictures inline in Jupyter; or tune a
problem with a study and report its pick over seeds, as `python -m src.tune` does.

    run = train("data=synthetic", "trainer.epochs=1")
    run.metrics["test_acc"], run.history[-1], run.predict(run.data.test_x[:8])
    report = tune("data.name=GunPoint", seeds=5)  # report["test_acc_mean"], report["test_acc_std"]
"""

import base64
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict
from torch import Tensor, nn

from src.config.composition import compose_config
from src.config.errors import ConfigError
from src.data.batched import BatchedData
from src.data.images import ImageData
from src.data.padded import Padded
from src.runs import pictures
from src.runs.results import read_metrics
from src.runs.runlock import hold_run_dir
from src.sweeps.tuning import TuneSettings
from src.sweeps.tuning import tune as tune_and_report
from src.training.building import open_saved_run
from src.training.job import train_job

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ("last", "best")


@dataclass
class Run:
    """A finished run: its figures, per-epoch history, resolved config, directory and trained model."""

    run_dir: Path
    config: DictConfig
    metrics: dict
    history: list[dict[str, float]]
    model: nn.Module  # in eval mode, on its device
    data: BatchedData

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.data.class_names

    @torch.inference_mode()
    def predict(self, inputs: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The predicted class of each input, given as the data holds them: images (N, H, W) uint8 (e.g.
        data.test_x), or series (N, T, F) as read and normalised, with their lengths when they differ."""
        inputs = inputs.to(self.data.device)
        if isinstance(self.data, ImageData):
            return self.model(self.data.as_sequences(inputs)).argmax(dim=1).cpu()  # (N, T, F) in the run's view
        if lengths is not None:
            inputs = Padded(inputs, lengths.cpu())
        return self.model(inputs).argmax(dim=1).cpu()

    def plot_history(self):
        """The learning curves (loss and accuracy per epoch) as a matplotlib Figure."""
        return pictures.learning_curves(self.history)

    @cached_property
    def _curves_png(self) -> bytes:
        return pictures.png(self.plot_history())

    def _repr_html_(self) -> str:
        """Jupyter's view: the headline figures, then the learning curves beside the prediction grid."""
        shown = {key: self.metrics.get(key) for key in ("test_acc", "best_val_acc", "epochs_completed", "status")}
        figures = ", ".join(
            f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}" for key, value in shown.items()
        )
        images = [(self._curves_png, 58)]
        grid = self.run_dir / "predictions.png"
        if grid.is_file():
            images.append((grid.read_bytes(), 38))
        tags = "".join(
            f'<img src="data:image/png;base64,{base64.b64encode(image).decode()}" style="width:{width}%">'
            for image, width in images
        )
        row = "display:flex;gap:1em;align-items:flex-start"
        return f'<p><b>{self.run_dir}</b>: {figures}</p><div style="{row}">{tags}</div>'


def compose_run(*overrides: str) -> tuple[DictConfig, Path]:
    """conf/ composed with the CLI's overrides, and the run directory the CLI would make of them
    (hydra.run.dir, under the project); a refused override is a ConfigError."""
    cfg = compose_config(*overrides, with_hydra=True)
    with open_dict(cfg):
        run_dir = ROOT / str(cfg.hydra.run.dir)  # outputs/runs/<date>/<time to the microsecond>
        del cfg["hydra"]  # the job's config, as the CLI hands it to the task
    return cfg, run_dir


def train(*overrides: str, run_dir: str | Path | None = None) -> Run:
    """Compose conf/ with the overrides (as `python -m src.run` takes them), train in this process and
    return the Run (its model from the last checkpoint); errors in the config raise a ConfigError."""
    cfg, fresh_dir = compose_run(*overrides)
    run_dir = Path(run_dir) if run_dir is not None else fresh_dir
    with hold_run_dir(run_dir):  # one writer per run directory, as for the command line
        train_job(cfg, run_dir, parallel_jobs=None, job_num=None, process_started=time.perf_counter())
    return load_run(run_dir)


def load_run(run_dir: str | Path, checkpoint: str = "last", device: str | None = None) -> Run:
    """The Run of a finished run on disk, its model from checkpoints/<checkpoint>.pt (`last` or `best`)
    on `device` (default: the run's trainer.device)."""
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if checkpoint not in CHECKPOINTS or not path.is_file():
        raise ConfigError("checkpoint", str(path), "a run directory holding checkpoints/last.pt or best.pt")
    saved = open_saved_run(path, device)
    return Run(
        run_dir=run_dir,
        config=saved.config,
        metrics=read_metrics(run_dir) or {},
        history=saved.checkpoint["state"]["history"],
        model=saved.model,
        data=saved.data,
    )


def tune(*overrides: str, seeds: int = 5, out: str | Path | None = None, study: str = "series") -> dict:
    """Tune with the study `hparams_search=<study>` on validation, then train its pick over `seeds` seeds on the
    whole training split, each scoring the test set once; the report (also `<out>/report.json`)."""
    if seeds < 1:
        raise ConfigError("seeds", seeds, "an integer >= 1")
    out = Path(out) if out is not None else ROOT / "outputs" / "tune" / time.strftime("%Y-%m-%d/%H-%M-%S")
    return tune_and_report(TuneSettings(tuple(overrides), out, seeds, study))
