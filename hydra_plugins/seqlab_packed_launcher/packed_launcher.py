"""The `packed` launcher as Hydra discovers it: hydra/launcher=packed runs a batch's jobs in threads."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from src.sweeps import packing


class PackedLauncher(packing.PackedLauncher):
    """src.sweeps.packing.PackedLauncher, here because Hydra instantiates plugins only from hydra_plugins."""


@dataclass
class PackedLauncherConf:
    _target_: str = "hydra_plugins.seqlab_packed_launcher.packed_launcher.PackedLauncher"
    # Jobs at once on each GPU (on the CPU without CUDA); null: 8 per GPU, 1 on a CPU.
    jobs_per_device: int | None = None


ConfigStore.instance().store(group="hydra/launcher", name="packed", node=PackedLauncherConf, provider="seqlab")
