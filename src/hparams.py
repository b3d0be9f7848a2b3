"""The HPARAMS dashboard: one row per run, written into the run's own TensorBoard writer.

SummaryWriter.add_hparams would write into a separate timestamped sub-run, which splits every job in
two; writing the three summaries ourselves keeps one run per job, as Lightning's logger does.
"""

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from src import tags

# The same keys in every run, so the dashboard's columns line up across a sweep.
HPARAM_KEYS = (
    "model.cell",
    "model.hidden_size",
    "model.num_layers",
    "model.dropout",
    "model.bidirectional",
    "model.head",
    "model.init",
    "data.view",
    "data.batch_size",
    "data.normalize",
    "optimizer.lr",
    "optimizer.weight_decay",
    "trainer.epochs",
    "trainer.grad_clip_norm",
    "seed",
)
METRIC_TAGS = (tags.VAL_ACC, tags.TEST_ACC, tags.FINAL_BEST_VAL_ACC, tags.FINAL_SECONDS)


def flat_value(value: object) -> int | float | str | bool:
    """TensorBoard takes int, float, str or bool: anything else (None, lists) becomes its text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def hparam_values(config: dict) -> dict[str, int | float | str | bool]:
    """The dashboard's columns for one resolved config: dataset, optimizer class, then HPARAM_KEYS."""

    def lookup(dotted: str) -> object:
        node: object = config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    values = {
        # the image set, the archive problem, or your own file
        "data": config["data"].get("dataset") or config["data"].get("name") or config["data"].get("path", "synthetic"),
        "optimizer": config["optimizer"]["_target_"].rsplit(".", 1)[-1],
    }
    values.update({key: flat_value(lookup(key)) for key in HPARAM_KEYS})
    return values


def write_hparams(writer: SummaryWriter, config: dict) -> None:
    """Declare this run's hyperparameters and the metric tags the dashboard shows beside them."""
    experiment, session_start, session_end = hparams(hparam_values(config), {tag: 0.0 for tag in METRIC_TAGS})
    file_writer = writer._get_file_writer()
    for summary in (experiment, session_start, session_end):
        file_writer.add_summary(summary)
