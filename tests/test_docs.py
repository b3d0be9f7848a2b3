"""The README and docs/ are checked against the code: every config key, module, file and make target
they name exists, and the README stays a short quickstart."""

import re

import pytest
from omegaconf import OmegaConf

from conftest import CONF, ROOT, compose_config

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SECTIONS = ("model", "data", "optimizer", "trainer", "scheduler", "bench")
FILE_TYPES = {"py", "md", "json", "png", "yaml", "csv", "txt", "pt"}


@pytest.fixture(scope="module")
def config_keys() -> set[str]:
    """Every dotted key of every option of every group (and of the bench config), composed once for all pages."""
    composed = [compose_config("data=synthetic", config_name="bench")]
    for group in ("model", "data", "optimizer", "scheduler"):
        composed += [compose_config(f"{group}={path.stem}") for path in (CONF / group).glob("*.yaml")]
    keys: set[str] = set()

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        else:
            keys.add(prefix)

    for cfg in composed:
        walk(OmegaConf.to_container(cfg), "")
    return keys


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_config_key_named_exists(page, config_keys):
    known = config_keys
    # `data.view`, not `run.data.test_x` (an attribute), `src/data/images.py` or `bench.json` (files).
    named = set(re.findall(rf"(?<![\w./])(?:{'|'.join(SECTIONS)})\.[A-Za-z_]+\b", page.read_text()))
    named = {key for key in named if key.rsplit(".", 1)[1] not in FILE_TYPES}
    assert named and not named - known, sorted(named - known)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_module_path_and_make_target_named_exists(page):
    text = page.read_text()
    for module in re.findall(r"python -m (src\.\w+)", text):
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module
    for path in re.findall(r"`((?:src|conf|tests|experiments|docs|hydra_plugins)/[\w./-]+?)`", text):
        assert (ROOT / path.split("<")[0]).exists(), path
    for link in re.findall(r"\]\(([\w./-]+)\)", text):
        assert (page.parent / link).exists(), link
    targets = set(re.findall(r"^(\w+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    assert set(re.findall(r"(?:^|`)make (\w+)", text, re.MULTILINE)) <= targets


def test_the_readme_is_a_quickstart():
    lines = (ROOT / "README.md").read_text().splitlines()
    headings = [line for line in lines if line.startswith("## ")]
    assert len(lines) <= 140 and headings[0].startswith("## Set up") and headings[-1] == "## Read more"
