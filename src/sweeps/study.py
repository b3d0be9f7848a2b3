"""A study as the sweeper and its trials both open it: where it is stored, its name, its pruner.

The sweeper creates the study; a trial's job reopens it by name and trial number, in the sweeper's
process (the packed and basic launchers: the live study) or in another (joblib, submitit, Slurm: from
its storage, Optuna's distributed mode), with the same pruner, and reports each epoch through it.
Both ends resolve the settings with the same function from the same `hydra.sweeper` config, so they
cannot disagree on the storage, the name or the pruner.
"""

import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.config.errors import ConfigError, one_line
from src.runs import tags

log = logging.getLogger(__name__)

JOURNAL_FILE = "optuna.journal"  # the study's record in the sweep directory, unless storage names another
IN_MEMORY = "memory"
DIRECTIONS = ("maximize", "minimize")
# The metric a study optimises, per direction: reported after every epoch, told when the trial ends.
OBJECTIVES = {"maximize": (tags.VAL_ACC, "val_acc"), "minimize": (tags.VAL_LOSS, "val_loss")}
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")

# Studies this process has open, by (storage, name): trials run as threads of the sweeper's process
# report through the study the sweeper holds (the only way to reach an in-memory one).
_live: dict[tuple[str, str], optuna.Study] = {}
_live_lock = threading.Lock()


@dataclass(frozen=True)
class StudySettings:
    """Where the study lives and how its trials are judged, resolved from `hydra.sweeper`."""

    name: str
    storage: str  # IN_MEMORY, a journal file's absolute path, or an RDB URL
    direction: str
    pruner: dict[str, Any]  # the pruner's config (`_target_` and arguments), instantiated at each end

    @property
    def report_tag(self) -> str:
        """The per-epoch metric reported to the trial (a TensorBoard tag of the epoch's history)."""
        return OBJECTIVES[self.direction][0]

    @property
    def value_key(self) -> str:
        """The metrics.json key told as the trial's value when it completes."""
        return OBJECTIVES[self.direction][1]


def study_settings(sweeper: DictConfig, sweep_dir: str | Path, cwd: str | Path) -> StudySettings:
    """Resolve `hydra.sweeper` (storage null: a journal file in the sweep directory); relative paths are
    the launching directory's `cwd`, wherever a job runs."""
    direction = str(sweeper.direction)
    if direction not in DIRECTIONS:
        raise ConfigError("hydra.sweeper.direction", direction, "maximize or minimize (one objective)")
    storage = resolve_storage(sweeper.storage, Path(cwd) / sweep_dir, Path(cwd))
    name = sweeper.study_name
    if name is None:
        if storage.startswith(RDB_SCHEMES):  # a shared database holds many studies: a default would mix them
            raise ConfigError("hydra.sweeper.study_name", None, f"a name for the study in {storage}")
        name = "seqlab"  # alone in its sweep directory's journal (or in this process's memory)
    return StudySettings(str(name), storage, direction, OmegaConf.to_container(sweeper.pruner, resolve=True))


def resolve_storage(storage: str | None, sweep_dir: Path, cwd: Path) -> str:
    """null: the sweep directory's journal; `memory`; an RDB URL as is; any other text, a journal file."""
    if storage is None:
        return str(sweep_dir / JOURNAL_FILE)
    storage = str(storage)
    if storage == IN_MEMORY or "://" in storage:
        if "://" in storage and not storage.startswith(RDB_SCHEMES):
            raise ConfigError(
                "hydra.sweeper.storage", storage, "null, memory, a journal file path, or an RDB URL (sqlite:///...)"
            )
        return storage
    return str(cwd / Path(storage).expanduser())


def make_pruner(settings: StudySettings) -> optuna.pruners.BasePruner:
    """The configured pruner; both ends build it, as Optuna does not store it with the study."""
    # Optuna's Hyperband takes these without a check and fails in every trial's first report instead.
    for key, least in (("reduction_factor", 2), ("min_resource", 1)):
        value = settings.pruner.get(key)
        if isinstance(value, int) and value < least:
            raise ConfigError(f"hydra.sweeper.pruner.{key}", value, f"an integer >= {least}")
    return built("hydra.sweeper.pruner", settings.pruner)


def built(key: str, config: dict[str, Any]) -> Any:
    """Instantiate a sampler's or pruner's config; what its constructor refuses is one line naming `key`."""
    try:
        return instantiate(config)
    except Exception as error:
        cause = error.__cause__ or error
        raise ConfigError(key, config.get("_target_"), f"arguments it accepts ({one_line(cause)})") from error


def storage_of(settings: StudySettings) -> optuna.storages.BaseStorage | str | None:
    """What Optuna's create_study/load_study take for the settings' storage."""
    if settings.storage == IN_MEMORY:
        return None
    if "://" in settings.storage:
        return settings.storage
    from optuna.storages.journal import JournalFileBackend

    Path(settings.storage).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(settings.storage))


class JournalDamaged(RuntimeError):
    """A journal file with a record that cannot be read before its end: one line naming the file and line."""


def repair_journal(path: Path) -> None:
    """Cut a torn last record (a process that died mid-write), saying so; refuse a damaged record before the
    end in one line. Optuna skips a torn last line as it reads, but the next record appended after it would
    turn it into damage mid-file: it is cut under the journal's own lock, before anything is appended."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.is_file():
        return
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with path.open("rb") as handle:
            lines = handle.readlines()
        for number, line in enumerate(lines, start=1):
            try:
                json.loads(line)
                if line.endswith(b"\n"):
                    continue
            except ValueError:  # JSON and UTF-8 decoding errors alike
                pass
            if number < len(lines):
                raise JournalDamaged(
                    f"{path}: line {number} of {len(lines)} is not a journal record; remove or repair that line "
                    f"(the {len(lines) - number} after it are later records of the study), or start a new study "
                    "with another hydra.sweep.dir or hydra.sweeper.storage"
                )
            with path.open("r+b") as handle:
                handle.truncate(sum(map(len, lines[:-1])))
            log.warning(
                "%s: cut its torn last line (line %d, %d bytes), left by a process that stopped mid-write; the "
                "study goes on from the %d records before it",
                path,
                number,
                len(line),
                number - 1,
            )
    finally:
        lock.release()


def create_study(settings: StudySettings, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """Create the study, or load the stored one of that name (a rerun continues it); this process's trials
    reach it through `trial_of`. A journal file is checked first (repair_journal)."""
    if settings.storage != IN_MEMORY and "://" not in settings.storage:
        repair_journal(Path(settings.storage))
    study = optuna.create_study(
        study_name=settings.name,
        storage=storage_of(settings),
        sampler=sampler,
        pruner=make_pruner(settings),
        direction=settings.direction,
        load_if_exists=True,
    )
    with _live_lock:
        _live[(settings.storage, settings.name)] = study
    return study


def close_study(settings: StudySettings) -> None:
    """Forget the live study (the sweep is over)."""
    with _live_lock:
        _live.pop((settings.storage, settings.name), None)


def trial_of(settings: StudySettings, number: int) -> optuna.Trial:
    """Trial `number` of the study: through the live study in this process, else reopened from its storage
    with the configured pruner (the sampler is never asked here: a cheap one will do)."""
    with _live_lock:
        study = _live.get((settings.storage, settings.name))
    if study is None:
        if settings.storage == IN_MEMORY:
            raise ConfigError(
                "hydra.sweeper.storage",
                IN_MEMORY,
                "a journal file or an RDB URL with a launcher that runs jobs in"
                " other processes (an in-memory study lives in the sweeper's process only)",
            )
        study = optuna.load_study(
            study_name=settings.name,
            storage=storage_of(settings),
            sampler=optuna.samplers.RandomSampler(),
            pruner=make_pruner(settings),
        )
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    # Optuna's public Trial constructor, as its own distributed mode uses it: the only way a job in
    # another process gets the trial the sweeper asked for.
    return optuna.Trial(study, trial_id)


def report_missed(trial: optuna.Trial, tag: str, history: list[dict[str, float]]) -> None:
    """Report the epochs of a resumed run's history that the trial never got: a run killed after an
    epoch's checkpoint and before its report resumes past that epoch, and the pruner would never see it
    (Optuna ignores, with a warning, a step reported twice: only the missing ones are sent)."""
    told = trial.study._storage.get_trial(trial._trial_id).intermediate_values  # as stored, not cached
    for row in history:
        epoch, value = int(row[tags.EPOCH]), row.get(tag, math.nan)
        if epoch >= 1 and epoch not in told and math.isfinite(value):
            trial.report(value, epoch)
