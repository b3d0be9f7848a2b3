"""The Python API (`src.api`) and the quickstart notebook, run headless by a real Jupyter kernel."""

import json

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from conftest import ROOT, TINY
from src.api import Run, compose_run, load_run, train
from src.config.errors import ConfigError


@pytest.fixture(scope="module")
def api_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return train(*TINY, "trainer.epochs=2", run_dir=tmp_path_factory.mktemp("api") / "run")


def test_train_returns_the_run_with_its_figures_history_and_trained_model(api_run):
    assert api_run.metrics == json.loads((api_run.run_dir / "metrics.json").read_text())
    assert [row["epoch"] for row in api_run.history] == [0, 1, 2]  # epoch 0: before training
    assert api_run.history[-1]["test/acc"] == api_run.metrics["test_acc"]
    assert api_run.config.model.hidden_size == 8 and api_run.config.data.num_train == 400
    assert not api_run.model.training and next(api_run.model.parameters()).device == torch.device("cpu")
    data = api_run.data
    predicted = api_run.predict(data.test_x)
    assert predicted.shape == data.test_y.shape
    assert (predicted == data.test_y).float().mean().item() == pytest.approx(api_run.metrics["test_acc"])


def test_a_run_shows_its_curves_and_prediction_grid_in_jupyter(api_run):
    html = api_run._repr_html_()
    assert html.count("data:image/png;base64,") == 2 and str(api_run.run_dir) in html
    axes = api_run.plot_history().axes
    assert [axis.get_ylabel() for axis in axes] == ["cross-entropy", "accuracy"]
    assert [line.get_label() for line in axes[0].get_lines()] == ["train", "val", "test"]


def test_load_run_gives_the_same_run_from_disk(api_run):
    again = load_run(api_run.run_dir)
    assert again.metrics == api_run.metrics and again.history == api_run.history and again.config == api_run.config
    for name, tensor in api_run.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], tensor)
    best = load_run(api_run.run_dir, "best")
    assert best.history[-1]["val/acc"] == api_run.metrics["best_val_acc"] and not best.model.training
    with pytest.raises(ConfigError, match="checkpoints/last.pt or best.pt"):
        load_run(api_run.run_dir / "nothing")


@pytest.mark.parametrize(
    ("override", "key", "fragment"),
    [
        ("model.hiden_size=3", "model.hiden_size", "not in 'RecurrentSchema'"),
        ("model=grux", "model", "gru gru_fcn lstm lstm_fcn rnn"),
        ("seed=abc", "seed", "Integer"),
        ("model.hidden_size=0", "model.hidden_size", "an integer > 0"),
        ("optimizer.betas=[2.0,0.9]", "optimizer.betas", "Invalid beta parameter"),
    ],
)
def test_train_raises_a_one_line_config_error_naming_the_key(tmp_path, override, key, fragment):
    with pytest.raises(ConfigError) as raised:
        train(*TINY, override, run_dir=tmp_path / "run")
    assert raised.value.key == key and fragment in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_runs_without_a_directory_get_a_fresh_one_each():
    (_, first), (_, second) = compose_run(*TINY), compose_run(*TINY)
    assert first != second and first.parent == second.parent == ROOT / "outputs" / "runs" / first.parent.name


def test_the_quickstart_notebook_runs_in_a_real_kernel(tmp_path):
    notebook = nbformat.read(ROOT / "docs" / "quickstart.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # committed clean
    # As papermill does: a cell after the one tagged `parameters` sets this run's values.
    at = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(f"run_dir = {str(tmp_path / 'run')!r}"))
    # The kernel starts in the project root, so it imports this checkout's src.
    NotebookClient(notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(ROOT)}}).execute()
    shown = [output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])]
    assert sum("image/png" in data for data in shown) >= 3  # learning curves, prediction grid, confusion matrix
    assert any("data:image/png" in data.get("text/html", "") for data in shown)  # the Run itself
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["epochs_completed"] == 3


def test_the_api_holds_the_run_directory_and_names_a_damaged_checkpoint(tmp_path):
    from src.runs.runlock import RunDirBusy, hold_run_dir
    from src.training.checkpoint_reader import CheckpointError

    with hold_run_dir(tmp_path / "busy"), pytest.raises(RunDirBusy, match="is in use by pid"):
        train(*TINY, run_dir=tmp_path / "busy")
    assert not (tmp_path / "busy" / "metrics.json").exists()
    (tmp_path / "bad" / "checkpoints").mkdir(parents=True)
    (tmp_path / "bad" / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.pt is not a seqlab checkpoint"):
        load_run(tmp_path / "bad")
