"""The one way to compose conf/ outside the command line (the API, src.describe, the tests): Hydra's compose
API over the project's conf/ with the schemas registered, a refused override as a ConfigError naming it."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from src.config.errors import ConfigError, one_line
from src.config.schema import register_schemas

CONF = Path(__file__).resolve().parents[2] / "conf"


def compose_config(*overrides: str, config_name: str = "config", with_hydra: bool = False) -> DictConfig:
    """conf/<config_name> composed with the overrides, as the CLI composes it (`with_hydra`: Hydra's own node
    too, for the run directory it would make)."""
    register_schemas()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name, overrides=list(overrides), return_hydra_config=with_hydra)
    except Exception as error:
        line = one_line(error)
        refused = [override for override in overrides if override.split("=", 1)[0].lstrip("+~") in line]
        raise ConfigError((refused or ["config"])[0].split("=", 1)[0], None, "", message=line) from error
