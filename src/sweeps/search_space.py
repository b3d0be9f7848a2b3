"""A study's search space: `hydra.sweeper.params` in Hydra's override grammar, as Optuna distributions.

The mapping is the one Hydra's own Optuna sweeper uses, so its users' `params` mean the same here:
`choice(...)` and a shuffled `range` are categorical; `range(a, b, step)` is an integer (or, with a float
bound, a float) distribution with that step and its upper end included; `interval(a, b)` is uniform over
floats (Hydra's grammar reads its bounds as floats); `tag(log, interval(a, b))` is log-uniform. Anything
else is a fixed value.
"""

from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from src.config.errors import ConfigError, one_line


@dataclass(frozen=True)
class SearchSpace:
    """What a study chooses (`distributions`), what it fixes (`fixed`), and deletions (`~key`) passed as is."""

    distributions: dict[str, BaseDistribution]
    fixed: dict[str, str]
    deletions: list[str]

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """A trial's overrides: its chosen values, then the fixed ones, in the order the space lists them."""
        chosen = [f"{name}={_override_text(value)}" for name, value in params.items()]
        return chosen + [f"{name}={value}" for name, value in self.fixed.items()] + self.deletions


def search_space(params: dict[str, str] | None, arguments: list[str]) -> SearchSpace:
    """The space of `hydra.sweeper.params` plus the command line's own overrides (those win)."""
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    deletions: list[str] = []
    for override in OverridesParser.create().parse_overrides(lines):
        if override.is_delete():
            deletions.append(str(override.input_line))
            continue
        key = override.get_key_element()
        distributions.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            distributions[key] = distribution(override)
        else:
            fixed[key] = override.get_value_element_as_str()
    return SearchSpace(distributions, fixed, deletions)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override; one that Optuna refuses (low above high, a log scale
    from 0) is a ConfigError naming the swept key."""
    try:
        return _distribution(override)
    except ValueError as error:
        if isinstance(error, ConfigError):
            raise
        key, text = override.get_key_element(), override.input_line.split("=", 1)[1]
        raise ConfigError(key, text, f"a range Optuna accepts ({one_line(error)})") from None


def _distribution(override: Override) -> BaseDistribution:
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        if any(isinstance(bound, float) for bound in (value.start, value.stop, value.step)):
            step = float(value.step) if value.step else None
            return FloatDistribution(float(value.start), float(value.stop), step=step)
        return IntDistribution(int(value.start), int(value.stop), step=int(value.step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        return FloatDistribution(float(value.start), float(value.end), log="log" in value.tags)
    raise ConfigError(
        override.get_key_element(),
        override.get_value_element_as_str(),
        "choice(...), range(...), interval(...), tag(log, interval(...)) or a fixed value",
    )


def _override_text(value: Any) -> str:
    # A choice of None is the override grammar's null; everything else is its own text.
    return "null" if value is None else str(value)
