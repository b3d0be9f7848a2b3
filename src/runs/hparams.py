"""The HPARAMS dashboard: one row per run, written into the run's own TensorBoard writer.

SummaryWriter.add_hparams would write into a separate timestamped sub-run, which splits every job in
two; writing the three summaries ourselves keeps one run per job, as Lightning's logger does. Writing
them ourselves also declares booleans as booleans (torch's `hparams` makes them 0/1) and the order.

TensorBoard's HPARAMS table orders the columns by (`differs` first, then name) and ticks the first five:
the keys a sweep varies are declared `differs`, and every name starts with a fixed rank, so that after
them come the keys that define a run, then the rest. The table shows `display_name`: the plain key.
"""

from google.protobuf import struct_pb2
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

from src.runs import tags

# What defines a run, then the rest; the same keys in every run, so the columns line up across sweeps.
DEFINING_KEYS = ("model.cell", "model.hidden_size", "model.num_layers", "optimizer.lr", "data.batch_size", "seed")
OTHER_KEYS = (
    "data",  # the dataset
    "optimizer",  # the optimizer's class
    "data.view",
    "model.head",
    "model.dropout",
    "model.bidirectional",
    "model.init",
    "data.normalize",
    "optimizer.weight_decay",
    "trainer.epochs",
    "trainer.grad_clip_norm",
)
HPARAM_KEYS = DEFINING_KEYS + OTHER_KEYS
# A group chosen in the overrides (model=gru) shows as the column that says what it chose.
GROUP_COLUMNS = {"model": "model.cell", "data": "data", "optimizer": "optimizer"}
METRIC_TAGS = (tags.VAL_ACC, tags.TEST_ACC, tags.FINAL_BEST_VAL_ACC, tags.FINAL_SECONDS, tags.FINAL_PRUNED)


def flat_value(value: object) -> int | float | str | bool:
    """TensorBoard takes int, float, str or bool: anything else (None, lists) becomes its text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def column_value(config: dict, column: str) -> object:
    """A column's value in a resolved config: a dotted key, or the dataset / optimizer class."""
    if column == "data":  # the image set, the archive problem, your own file, or the loader's name
        data = config["data"]
        loader = str(data.get("_target_", "")).rsplit(".", 1)[-1].removeprefix("make_").removeprefix("load_")
        return data.get("dataset") or data.get("name") or data.get("path") or loader
    if column == "optimizer":
        return config["optimizer"]["_target_"].rsplit(".", 1)[-1]
    node: object = config
    for part in column.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def hparam_values(config: dict, swept: dict[str, str] | None = None) -> dict[str, int | float | str | bool]:
    """The dashboard's columns for one resolved config, in order: the swept keys (their values, or the
    option a group override chose), then HPARAM_KEYS."""
    values = {}
    for key, chosen in (swept or {}).items():
        column = GROUP_COLUMNS.get(key, key)
        value = column_value(config, column)
        values[column] = flat_value(chosen if isinstance(value, dict) or value is None else value)
    for column in HPARAM_KEYS:
        values.setdefault(column, flat_value(column_value(config, column)))
    return values


def hparam_name(column: str) -> str:
    """The name TensorBoard sorts by: a rank fixed for each key (swept keys outside HPARAM_KEYS last)."""
    rank = HPARAM_KEYS.index(column) if column in HPARAM_KEYS else len(HPARAM_KEYS)
    return f"{rank:02d} {column}"


def _declared_type(value: object) -> tuple[int, str]:
    """The column's type for TensorBoard and the protobuf Value field that holds it (bool before int)."""
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL, "bool_value"
    if isinstance(value, str):
        return api_pb2.DATA_TYPE_STRING, "string_value"
    return api_pb2.DATA_TYPE_FLOAT64, "number_value"


def hparam_summaries(values: dict[str, int | float | str | bool], swept: set[str]) -> list[Summary]:
    """The experiment (columns, their types, which the sweep varies, the metrics), the session's values
    and its end, as the three summaries the hparams plugin reads."""
    infos, start = [], plugin_data_pb2.SessionStartInfo()
    for column, value in values.items():
        data_type, field = _declared_type(value)
        name = hparam_name(column)
        info = api_pb2.HParamInfo(name=name, display_name=column, type=data_type, differs=column in swept)
        if data_type == api_pb2.DATA_TYPE_BOOL:
            info.domain_discrete.extend([False, True])
        infos.append(info)
        start.hparams[name].CopyFrom(struct_pb2.Value(**{field: value}))
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=tag) for tag in METRIC_TAGS]
    contents = {
        metadata.EXPERIMENT_TAG: plugin_data_pb2.HParamsPluginData(
            experiment=api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
        ),
        metadata.SESSION_START_INFO_TAG: plugin_data_pb2.HParamsPluginData(session_start_info=start),
        metadata.SESSION_END_INFO_TAG: plugin_data_pb2.HParamsPluginData(
            session_end_info=plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS)
        ),
    }
    return [
        Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(content))])
        for tag, content in contents.items()
    ]


def write_hparams(writer: SummaryWriter, config: dict, swept: dict[str, str]) -> None:
    """Declare this run's hyperparameters, led by the keys its sweep varies, and the metrics beside them."""
    values = hparam_values(config, swept)
    file_writer = writer._get_file_writer()
    for summary in hparam_summaries(values, {GROUP_COLUMNS.get(key, key) for key in swept}):
        file_writer.add_summary(summary)
