"""`python -m src.evaluate ckpt=<path>`: test-set accuracy, loss, per-class accuracy and the two pictures
of a saved model, without training. The checkpoint's saved config decides the model and the data."""

import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.config.errors import ConfigError, cli, stop
from src.runs import pictures
from src.runs.atomic import write_bytes_atomically
from src.training.checkpoints import read_checkpoint
from src.training.devices import pick_device
from src.training.scoring import draw_confusion, draw_predictions, evaluate, predict

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
    checkpoint = read_checkpoint(path)  # one line for a damaged, foreign or unknown-format file
    saved = checkpoint["config"]
    data_config = dict(saved["data"])
    if data_root:
        if "root" not in data_config:
            raise ConfigError("data_root", data_root, "null: this checkpoint's data is generated, it has no files")
        data_config["root"] = data_root
    device = pick_device(device_name)
    data = instantiate(data_config).place(device)
    model = instantiate(
        saved["model"], input_size=data.input_size, num_classes=data.num_classes, seq_len=data.seq_len
    ).to(device)
    model.load_state_dict(checkpoint["model"])
    test_loss, test_acc = evaluate(model, data, "test")
    counts = pictures.confusion_matrix(predict(model, data, "test"), data.test_y, data.num_classes)
    per_class = (counts.diag() / counts.sum(dim=1).clamp(min=1)).tolist()
    draw_predictions(model, data, run_dir)
    draw_confusion(model, data, run_dir)
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
