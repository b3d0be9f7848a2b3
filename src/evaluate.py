"""`python -m src.evaluate ckpt=<path>`: test-set accuracy, loss, per-class accuracy and the two pictures
of a saved model, without training. The checkpoint's saved config decides the model and the data."""

import json
import logging
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from src import pictures
from src.job import pick_device
from src.run import cli
from src.schema import ConfigError
from src.scoring import draw_confusion, draw_predictions, evaluate, predict

log = logging.getLogger(__name__)


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Rebuild the checkpoint's model and data, evaluate on the test set, write evaluation.json and pictures."""
    path = Path(cfg.ckpt)
    if not path.is_file():
        raise ConfigError("ckpt", str(path), "the path of a run's checkpoints/last.pt or best.pt")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or not {"model", "config", "state"} <= set(checkpoint):
        raise ConfigError("ckpt", str(path), "a checkpoint written by src.run (with model, config and state)")
    saved = checkpoint["config"]
    data_config = dict(saved["data"])
    if cfg.data_root:
        if "root" not in data_config:
            raise ConfigError("data_root", cfg.data_root, "null: this checkpoint's data is generated, it has no files")
        data_config["root"] = cfg.data_root
    device = pick_device(cfg.device)
    data = instantiate(data_config).place(device)
    model = instantiate(saved["model"], input_size=data.input_size, num_classes=data.num_classes,
                        seq_len=data.seq_len).to(device)
    model.load_state_dict(checkpoint["model"])
    test_loss, test_acc = evaluate(model, data, "test")
    counts = pictures.confusion_matrix(predict(model, data, "test"), data.test_y, data.num_classes)
    per_class = (counts.diag() / counts.sum(dim=1).clamp(min=1)).tolist()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    draw_predictions(model, data, run_dir)
    draw_confusion(model, data, run_dir)
    report = {
        "checkpoint": str(path), "epoch": checkpoint["state"]["epoch"], "test_acc": test_acc, "test_loss": test_loss,
        "per_class_acc": dict(zip(data.class_names, per_class)),
    }
    (run_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"{path} (epoch {report['epoch']}) on the test set: accuracy {test_acc:.4f}, loss {test_loss:.4f}",
             *(f"  {name:>14}: {accuracy:.4f}" for name, accuracy in report["per_class_acc"].items()),
             f"pictures and evaluation.json in {run_dir}"]
    log.info("\n".join(lines))


if __name__ == "__main__":
    cli(main)
