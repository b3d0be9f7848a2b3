"""Errors as the user sees them: one line naming the key, the value and what is allowed."""

import errno
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

# Words torch's argument checks use for a key that the config spells otherwise.
TORCH_WORDS = {"beta": "betas", "learning rate": "lr", "epsilon": "eps"}
# Errors of writing: no space, a read-only file system or a full quota, a name too long, a file where a folder
# must be made. A missing or unreadable file is not reported as a write.
WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG, errno.EFBIG, errno.ENOTDIR}


class ConfigError(ValueError):
    """A config value that is not allowed: names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str, *, message: str | None = None) -> None:
        super().__init__(message or f"{key}={value!r} is not allowed: expected {allowed}")
        self.key = key


def require(ok: bool, key: str, value: object, allowed: str) -> None:
    """Raise ConfigError(key, value, allowed) unless ok."""
    if not ok:
        raise ConfigError(key, value, allowed)


# Hydra's answer to `+group=option` for a group the defaults list already has (experiment: null, say).
MULTIPLE_VALUES = re.compile(r"Multiple values for (\S+)\. To override a value use 'override \1: (.+)'")


@contextmanager
def naming_key(section: str, config: Mapping) -> Iterator[None]:
    """Turn the ValueError or TypeError torch raises for an argument built from `config` (the `section`
    of the config: optimizer, scheduler, model) into a ConfigError naming the key torch refused."""
    try:
        yield
    except Exception as error:
        # Hydra's instantiate wraps what the constructor raised; its own text is only "Error in call to ...".
        refused = error.__cause__ if type(error).__name__ == "InstantiationException" else error
        if isinstance(refused, ConfigError) or not isinstance(refused, (ValueError, TypeError)):
            raise
        raise _refused_by_torch(section, config, str(refused)) from error


def require_argument_kinds(section: str, config: Mapping, target: Callable) -> None:
    """Refuse, naming its key, a value in `config` (the `section` of the config) of another kind than the
    default of target's argument of that name: a flag that is not true or false, a number or word that is
    not one, a list of another length (betas=[0.9]). torch checks ranges, not kinds: it would fail later, on
    an index or a comparison, in words that name no key, or take a third beta without a word."""
    name = getattr(target, "__name__", section)
    for key, parameter in inspect.signature(target).parameters.items():
        default = parameter.default
        if key not in config or default is inspect.Parameter.empty or default is None:
            continue
        value = config[key]
        numbers = isinstance(value, (list, tuple)) and all(map(_is_number, value))
        if isinstance(default, bool):
            ok, kind, default = isinstance(value, bool), "true or false", str(default).lower()
        elif _is_number(default) and "list" in str(parameter.annotation):  # one per parameter group, or one for all
            ok, kind = _is_number(value) or numbers, "a number or a list of numbers"
        elif _is_number(default):
            ok, kind = _is_number(value), "a number"
        elif isinstance(default, str):
            ok, kind, default = isinstance(value, str), "a word", repr(default)
        elif isinstance(default, tuple):
            ok, kind, default = (
                numbers and len(value) == len(default),
                f"a list of {len(default)} numbers",
                list(default),
            )
        else:
            continue
        require(ok, f"{section}.{key}", value, f"{kind}, as {name} takes {key} (its default: {default})")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _refused_by_torch(section: str, config: Mapping, text: str) -> ConfigError:
    keys = [
        key for key in config if not key.startswith("_") and re.search(rf"\b{re.escape(key)}\b", text, re.IGNORECASE)
    ]
    keys += [key for word, key in TORCH_WORDS.items() if key in config and word in text.lower()]
    target = str(config.get("_target_", section)).rsplit(".", 1)[-1]
    allowed = f"a value {target} accepts ({text.strip().rstrip('.')})"
    if not keys:
        return ConfigError(section, target, allowed)
    return ConfigError(f"{section}.{keys[0]}", config[keys[0]], allowed)


def one_line(error: BaseException) -> str:
    """Reduce an exception (Hydra's multi-line reports and their causes) to one readable line."""
    if match := MULTIPLE_VALUES.match(str(error)):
        group, option = match.groups()
        return f"+{group}={option}: {group} already has a place in the defaults list; write {group}={option}"
    if isinstance(error, OSError) and error.filename:
        if error.errno in WRITE_ERRORS:  # the disk or the folder refused a write
            where = "check hydra.run.dir / hydra.sweep.dir and free space"
            return f"cannot write {error.filename}: {error.strerror} ({where})"
        return f"{error.filename}: {error.strerror}"  # a file that is missing or unreadable, say
    # This project's errors (ConfigError, CheckpointError, DataError...) say all there is to say, their
    # cause's reason included; others (Hydra's) may need their cause's text.
    own = type(error).__module__.split(".")[0] == __name__.split(".")[0]
    parts = [error, error.__cause__] if error.__cause__ is not None and not own else [error]
    if type(error).__name__ == "InstantiationException":  # its own text is only "Error in call to ..."
        parts = parts[1:] or parts
    kept = []
    for line in "\n".join(map(str, parts)).splitlines():
        line = line.strip()
        if line.startswith("Config search path"):
            break
        if line and not line.startswith(("full_key:", "object_type=", "reference_type=")):
            kept.append(line)
    return " ".join(kept) or type(error).__name__
