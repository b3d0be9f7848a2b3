"""The real CLI in a process of its own: one run end to end and one bad value in fresh interpreters, and bad
values (those our checks refuse, those torch refuses, those of src.evaluate and src.bench) that each end in
one line on stderr; the one-line wrapper in-process.

Other files start the CLI where the process is part of what they test (launchers, signals, a killed run, a
command as the docs show it), forked with the libraries imported (cli_processes.py); everything else runs
in-process (conftest.train_in_process / sweep_in_process), through the same job code.
"""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, TINY, cli_environment, run_cli
from src.runs import tags
from src.runs.exits import cli


def test_a_real_run_writes_metrics_tensorboard_checkpoints_pictures_and_its_log(tmp_path):
    result = run_cli(*TINY, "trainer.epochs=2", f"hydra.run.dir={tmp_path}", fresh=True)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert tuple(metrics) == tags.METRIC_KEYS and metrics["status"] == "ok" and metrics["epochs_completed"] == 2
    assert (tmp_path / "checkpoints" / "last.pt").is_file() and (tmp_path / "predictions.png").is_file()
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    log = (tmp_path / "run.log").read_text()
    assert "ready to train" in log and f"{metrics['num_params']:,}" in log and "epoch 2:" in log
    assert (tmp_path / ".hydra" / "overrides.yaml").is_file()


def test_a_bad_value_is_one_line_with_exit_1_nothing_written_and_torch_never_imported(tmp_path):
    # A fresh interpreter that says, as it exits, which of the heavy libraries it imported: a bad value is
    # refused before torch is (about a second instead of four).
    report = "import atexit, sys; atexit.register(lambda: print('imported', 'torch' in sys.modules))"
    wrapper = f"{report}; import runpy; runpy.run_module('src.run', run_name='__main__', alter_sys=True)"
    overrides = (*TINY, "model.hidden_size=0", f"hydra.run.dir={tmp_path}")
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *overrides], cwd=ROOT, env=cli_environment(), capture_output=True, text=True
    )
    # Exactly one line: no "Error executing job with overrides" from Hydra before it, no traceback.
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["error: model.hidden_size=0 is not allowed: expected an integer > 0"]
    assert result.stdout.splitlines()[-1] == "imported False"
    assert not (tmp_path / "metrics.json").exists()


def test_ctrl_c_and_errors_become_one_line(capsys, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # cli sets it for Hydra; monkeypatch restores it afterwards

    def interrupted() -> None:
        raise KeyboardInterrupt

    def failing() -> None:
        raise ValueError("first line\nsecond line")

    with pytest.raises(SystemExit) as stopped:
        cli(interrupted)
    assert stopped.value.code == 130
    assert capsys.readouterr().err.strip().startswith("error: interrupted; what was checkpointed is kept")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    with pytest.raises(SystemExit) as stopped:
        cli(failing)
    assert stopped.value.code == 1 and capsys.readouterr().err == "error: first line second line\n"
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # the whole traceback on request: the error itself goes up
    with pytest.raises(ValueError, match="first line"):
        cli(failing)


def test_entry_points_do_not_import_each_other():
    import ast
    from pathlib import Path

    entry_points = {"run", "api", "evaluate", "describe", "bench", "step_profile", "report", "tune"}
    for name in entry_points:
        tree = ast.parse((Path(__file__).parents[1] / "src" / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not {f"src.{other}" for other in entry_points - {name}} & imported, name


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "optimizer.betas=[2.0,0.9]",
            "error: optimizer.betas=[2.0, 0.9] is not allowed: expected a value Adam accepts "
            "(Invalid beta parameter at index 0: 2.0)",
        ),
        (  # torch would fail on an index, naming nothing
            "optimizer.betas=[0.9]",
            "error: optimizer.betas=[0.9] is not allowed: expected a list of 2 numbers, as Adam takes betas "
            "(its default: [0.9, 0.999])",
        ),
    ],
)
def test_a_value_torch_refuses_is_one_line_naming_the_key(tmp_path, override, line):
    result = run_cli(*TINY, override, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 1 and result.stderr.splitlines() == [line]


@pytest.mark.parametrize(
    ("module", "overrides", "line"),
    [
        ("src.evaluate", ("ckpt={tmp}/nothing.pt",), "error: ckpt='{tmp}/nothing.pt' is not allowed: expected "),
        (
            "src.evaluate",
            ("ckpt={tmp}/notes.pt",),
            "error: {tmp}/notes.pt is not a seqlab checkpoint, or not a whole one",
        ),
        (
            "src.evaluate",
            ("ckpt={tmp}/notes.pt", "device=tpu"),
            "error: device='tpu' is not allowed: expected auto | cpu",
        ),
        (
            "src.bench",
            ("data=synthetic", "bench.warmup=-1"),
            "error: bench.warmup=-1 is not allowed: expected an integer >= 0",
        ),
    ],
)
def test_a_bad_value_of_evaluate_or_bench_is_one_line_saying_it_once(tmp_path, module, overrides, line):
    (tmp_path / "notes.pt").write_text("some notes, not a checkpoint")
    overrides = [override.format(tmp=tmp_path) for override in overrides]
    result = run_cli(*overrides, f"hydra.run.dir={tmp_path / 'out'}", module=module)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr  # no Hydra line before it
    assert result.stderr.startswith(line.format(tmp=tmp_path))
    reason = result.stderr.split(" (", 1)[-1]
    assert result.stderr.count(reason.strip()) == 1  # the cause's words are not repeated after it
