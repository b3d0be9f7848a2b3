"""A study as the sweeper and its trials both open it: where it is stored, its name, its pruner.

The sweeper creates the study; a trial's job reopens it by name and trial number, in the sweeper's
process (the packed and basic launchers: the live study) or in another (joblib, submitit, Slurm: from
its storage, Optuna's distributed mode), with the same pruner, and reports each epoch through it.
Both ends resolve the settings with the same function from the same `hydra.sweeper` config, so they
cannot disagree on the storage, the name or the pruner.
"""

import fcntl
import json
import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
_engines: dict[str, Any] = {}  # one connection pool per database URL, for the asking lock


@dataclass(frozen=True)
class StudySettings:
    """Where the study lives and how its trials are judged, resolved from `hydra.sweeper`."""

    name: str
    storage: str  # IN_MEMORY, a journal file's absolute path, or an RDB URL
    direction: str
    pruner: dict[str, Any]  # the pruner's config (`_target_` and arguments), instantiated at each end
    heartbeat_interval: int | None = None  # seconds between a running trial's heartbeats (RDB storages)
    grace_period: int | None = None  # seconds without one before a trial is failed (null: Optuna's 2 intervals)
    max_retries: int = 0  # times a trial whose process died is run again, from its checkpoint

    @property
    def heartbeats(self) -> bool:
        return self.heartbeat_interval is not None

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
    pruner = OmegaConf.to_container(sweeper.pruner, resolve=True)
    return StudySettings(str(name), storage, direction, pruner, *_retrying(sweeper, storage))


def _retrying(sweeper: DictConfig, storage: str) -> tuple[int | None, int | None, int]:
    """The heartbeat interval, grace period and retries, checked: heartbeats need an RDB storage."""
    interval, grace, retries = (sweeper.get(key) for key in ("heartbeat_interval", "grace_period", "max_retries"))
    retries = retries or 0
    if interval is not None and (not isinstance(interval, int) or interval < 1 or not storage.startswith(RDB_SCHEMES)):
        raise ConfigError(
            "hydra.sweeper.heartbeat_interval",
            interval,
            "null, or whole seconds >= 1 with an RDB storage (postgresql://...): Optuna's journal keeps no heartbeats",
        )
    if grace is not None and (interval is None or not isinstance(grace, int) or grace <= interval):
        raise ConfigError("hydra.sweeper.grace_period", grace, "null, or whole seconds above heartbeat_interval")
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError("hydra.sweeper.max_retries", retries, "an integer >= 0")
    return interval, grace, retries


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
        if not settings.heartbeats:
            return settings.storage
        # A trial whose process stops beating is failed by whoever next checks (fail_stale_trials), and this
        # callback enqueues its copy; the sweeper runs the copy from the failed trial's checkpoint.
        return optuna.storages.RDBStorage(
            settings.storage,
            heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period,
            heartbeat_stale_trial_callback=retry_callback(settings),
        )
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


def retry_callback(settings: StudySettings) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None:
    """What enqueues a copy of a trial whose process died (its parameters, attributes and retry history), up to
    max_retries times: Optuna's own, called by its heartbeat check, or by the sweeper that saw the death."""
    if not settings.max_retries:
        return None
    with warnings.catch_warnings():  # experimental in Optuna 5, and the documented way to retry
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=settings.max_retries)


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


@contextmanager
def asking_lock(settings: StudySettings) -> Iterator[None]:
    """Held while a sweep process counts the study's trials and asks for the next, so that sweep processes
    sharing a study (on many machines) never ask one trial too many: a PostgreSQL advisory lock, or a file
    lock beside a journal or SQLite file; other databases get no lock across processes."""
    if settings.storage.startswith("postgresql"):
        import sqlalchemy

        with _live_lock:
            engine = _engines.get(settings.storage) or _engines.setdefault(
                settings.storage, sqlalchemy.create_engine(settings.storage, pool_size=1)
            )
        key = {"key": f"seqlab ask {settings.name}"}
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(hashtext(:key))"), key)
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(hashtext(:key))"), key)
                connection.commit()
        return
    path = settings.storage.removeprefix("sqlite:///") if settings.storage.startswith("sqlite:///") else None
    if path is None and settings.storage != IN_MEMORY and "://" not in settings.storage:
        path = settings.storage  # a journal file
    if path is None:
        yield
        return
    with open(f"{path}.ask.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
