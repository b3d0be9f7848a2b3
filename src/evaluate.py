"""`python -m src.evaluate ckpt=<path>`: test-set accuracy, loss, per-class accuracy and the two pictures
of a saved model, without training. The checkpoint's saved config decides the model and the data."""

import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from src.config.errors import ConfigError
from src.runs import pictures
from src.runs.atomic import write_bytes_atomically
from src.runs.exits import cli, stop
from src.training.building import open_saved_run
from src.training.scoring import draw_confusion, draw_predictions, score

log = logging.getLogger(__name__)


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Evaluate cfg.ckpt on cfg.device, its data found under cfg.data_root if it moved."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        report = evaluate_checkpoint(Path(cfg.ckpt), cfg.device, cfg.data_root, run_dir)
    except Exception as error:
        stop(error)  # one line, without Hydra's "Error executing job with overrides" before it
    lines = [
        f"{report['checkpoint']} (epoch {report['epoch']}) on the test set: accuracy {report['test_acc']:.4f}, "
        f"loss {report['test_loss']:.4f}",
        *(f"  {name:>14}: {accuracy:.4f}" for name, accuracy in report["per_class_acc"].items()),
    ]
    log.info("\n".join(lines))


def evaluate_checkpoint(path: Path, device_name: str, data_root: str | None, run_dir: Path) -> dict:
    """Rebuild the checkpoint's model and data, evaluate on the test set, write evaluation.json and pictures."""
    if not path.is_file():
        raise ConfigError("ckpt", str(path), "the path of a run's checkpoints/last.pt or best.pt")
    saved = open_saved_run(path, device_name, data_root)
    model, data, checkpoint = saved.model, saved.data, saved.checkpoint
    test_loss, test_acc, predicted = score(model, data, "test")  # one pass: the figures and both pictures
    counts = pictures.confusion_matrix(predicted, data.test_y, data.num_classes)
    per_class = (counts.diag() / counts.sum(dim=1).clamp(min=1)).tolist()
    draw_predictions(model, data, run_dir, predicted)
    draw_confusion(model, data, run_dir, predicted)
    report = {
        "checkpoint": str(path),
        "epoch": checkpoint["state"]["epoch"],
        "test_acc": test_acc,
        "test_loss": test_loss,
        "per_class_acc": dict(zip(data.class_names, per_class, strict=True)),
    }
    write_bytes_atomically(run_dir / "evaluation.json", (json.dumps(report, indent=2) + "\n").encode())
    return report


if __name__ == "__main__":
    cli(main)
