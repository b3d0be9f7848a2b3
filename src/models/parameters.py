"""A model's trainable parameters as a table (name, shape, count), for the run log and describe."""

from torch import nn


def parameter_table(model: nn.Module) -> tuple[list[tuple[str, tuple[int, ...], int]], int]:
    """Rows of (name, shape, count) for every trainable parameter, and their total."""
    rows = [(name, tuple(p.shape), p.numel()) for name, p in model.named_parameters() if p.requires_grad]
    return rows, sum(count for _, _, count in rows)


def format_parameters(model: nn.Module) -> tuple[str, int]:
    """The parameter table as Markdown (name, shape, count; total), and the total."""
    rows, total = parameter_table(model)
    lines = ["| name | shape | count |", "| --- | --- | ---: |"]
    lines += [f"| {name} | {shape} | {count:,} |" for name, shape, count in rows]
    lines.append(f"| **total** | | **{total:,}** |")
    return "\n".join(lines), total
