"""`python -m src.describe [overrides]`: the configured model's parameters and tensor shapes, no data needed.

(Named `describe`, not `inspect`: module names stay clear of the standard library's.)
"""

import sys

import torch
from omegaconf import DictConfig

from src.config.composition import compose_config
from src.config.errors import one_line
from src.config.schema import model_summary, validate
from src.data.images import IMAGE_SHAPE, sequence_shape
from src.models.parameters import format_parameters
from src.training.building import build_data, build_model


def describe(cfg: DictConfig) -> None:
    """Print the parameter table, and the shapes of out, h_n (and c_n) for a batch of 2 sequences."""
    validate(cfg)
    if "view" not in cfg.data:  # series: their steps and classes are known once the files are read
        data = build_data(cfg, torch.device("cpu"))
        seq_len, input_size, num_classes, view = data.train_x.shape[1], data.input_size, data.num_classes, data.view
        model_seq_len = data.seq_len  # None when the series differ in length
    else:
        synthetic = "seq_len" in cfg.data
        height, width = (cfg.data.seq_len, cfg.data.input_size) if synthetic else IMAGE_SHAPE
        seq_len, input_size = sequence_shape(cfg.data.view, height, width)
        num_classes, view = (cfg.data.num_classes if synthetic else 10), cfg.data.view
        model_seq_len = seq_len
    model = build_model(cfg.model, input_size, num_classes, model_seq_len)
    table, total = format_parameters(model)
    print(f"{model_summary(cfg.model)}, on {view}: {seq_len} steps of {input_size} features, {num_classes} classes\n")
    print(table)
    print(f"\ntotal parameters: {total:,}\n")
    batch = 2
    seen = {}  # what the recurrent stack reads and returns, however the model feeds it (shuffled or not)
    recurrent = getattr(model, "rnn", None)  # a family without one shows its logits only
    if recurrent is not None:
        recurrent.register_forward_hook(lambda _, inputs, output: seen.update(x=inputs[0], output=output))
    with torch.inference_mode():
        logits = model(torch.rand(batch, seq_len, input_size))  # (N, L, Q) in
    print(f"x:      {(batch, seq_len, input_size)}  N x L x Q")
    if seen:
        out, state = seen["output"]
        states = dict(zip(("h_n", "c_n"), state, strict=True)) if cfg.model.cell == "lstm" else {"h_n": state}
        if tuple(seen["x"].shape) != (batch, seq_len, input_size):
            print(f"rnn x:  {tuple(seen['x'].shape)}  N x Q x L (dimension shuffle: one step per feature)")
        print(f"out:    {tuple(out.shape)}  N x L x D (D = hidden_size x directions)")
        for name, tensor in states.items():
            print(f"{name}:    {tuple(tensor.shape)}  K x N x H (K = num_layers x directions)")
    print(f"logits: {tuple(logits.shape)}  N x classes")


def main(overrides: list[str]) -> None:
    """Compose conf/ with the overrides (no run directory: this command only reads) and describe it."""
    try:
        describe(compose_config(*overrides))
    except Exception as error:
        sys.exit(f"error: {one_line(error)}")


if __name__ == "__main__":
    main(sys.argv[1:])
