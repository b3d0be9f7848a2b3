"""The closed sets of choices a config can make, as Enums shared by the schemas and the code that acts on them.

OmegaConf refuses any other value at composition and lists the allowed names. Each Enum is also a
`str`, so a value read back from a saved config (plain text) compares equal to its member.
"""

from enum import Enum


class Choice(str, Enum):
    """A choice that prints, formats and hashes as its plain text (its name and value are the same)."""

    __str__ = str.__str__
    __format__ = str.__format__


class Cell(Choice):
    rnn = "rnn"
    gru = "gru"
    lstm = "lstm"


class Head(Choice):
    last = "last"
    flatten = "flatten"
    mean = "mean"
    max = "max"
    attention = "attention"


class Init(Choice):
    orthogonal = "orthogonal"
    torch = "torch"


class View(Choice):
    rows = "rows"
    columns = "columns"
    pixels = "pixels"
    permuted = "permuted"


class Dataset(Choice):
    mnist = "mnist"
    fashion_mnist = "fashion_mnist"
    kmnist = "kmnist"


class Normalization(Choice):
    """How series are scaled: not at all, each series on its own (the UCR/UEA archive's z-normalisation),
    or each channel by the training split's mean and std."""

    none = "none"
    series = "series"
    channel = "channel"


class Placement(Choice):
    auto = "auto"
    device = "device"
    host = "host"


class GraphMode(Choice):
    """Whether the training step is replayed as a CUDA graph: wherever the run allows, required, or never.

    Not true/false: Hydra's override grammar and YAML read those (and on/off) as booleans, not choices.
    """

    auto = "auto"
    always = "always"
    never = "never"


class Interval(Choice):
    """How often a learning-rate scheduler steps: after every optimizer step, or once per epoch."""

    step = "step"
    epoch = "epoch"


# "fp16-mixed" is no Python name, so this Enum is built from (name, value) pairs.
Precision = Choice("Precision", [("fp32", "fp32"), ("bf16", "bf16"), ("fp16-mixed", "fp16-mixed")])
Precision.__doc__ = "fp32; bf16 (autocast); fp16-mixed (autocast and a loss scaler, CUDA only)."


def names(choices: type[Enum]) -> str:
    """The allowed values of a choice, as an error message lists them: `a | b | c`."""
    return " | ".join(choices.__members__)
