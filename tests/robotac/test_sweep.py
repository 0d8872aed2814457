"""``robotac sweep``: two workers on one SQLite study, pruning, report, bad spaces refused early."""

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from robotac.cli import main
from robotac.sweep import SweepError, default_storage, parse_sweep

ROOT = Path(__file__).resolve().parents[2]
TINY = {"env": "Pendulum-v1", "algo": "sac", "total_steps": 600, "learning_starts": 200,
        "batch_size": 64, "hidden": [16], "eval_every": 200, "eval_episodes": 1,
        "checkpoint_every": 600, "progress": False, "video": False, "export": False}
SPACE = {"critic_lr": {"type": "float", "low": "1e-4", "high": "1e-3", "log": True},
         "gamma": {"type": "categorical", "choices": [0.97, 0.99]},
         "hidden": {"type": "categorical", "choices": [[16], [16, 16]]},
         "env_kwargs.g": {"type": "float", "low": 9.0, "high": 10.0}}


def _write(path: Path, **overrides) -> Path:
    spec = {"name": "tiny", "config": TINY, "space": SPACE, "n_trials": 2, **overrides}
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Two worker processes started together on one SQLite study, 1 trial each, no pruning."""
    tmp = tmp_path_factory.mktemp("sweep")
    sweep_file = _write(tmp / "sweep.yaml", pruner={"type": "none"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "robotac.cli", "sweep", str(sweep_file), "--out",
           str(tmp / "out"), "--n-trials", "1"]
    procs = [subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    study = optuna.load_study(study_name="tiny", storage=default_storage(tmp / "out"))
    return tmp, sweep_file, study


def test_two_workers_fill_one_study_and_each_trial_is_a_run_directory(two_workers):
    tmp, _, study = two_workers
    trials = study.get_trials()
    assert len(trials) == 2
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # one trial from each worker
    for t in trials:
        run_dir = tmp / "out" / f"trial-{t.number:04d}"
        cfg = json.loads((run_dir / "config.json").read_text())
        assert cfg["critic_lr"] == pytest.approx(t.params["critic_lr"])
        assert cfg["gamma"] == t.params["gamma"]
        assert cfg["hidden"] == json.loads(t.params["hidden"])
        assert cfg["env_kwargs"]["g"] == pytest.approx(t.params["env_kwargs.g"])
        assert (run_dir / "checkpoints" / "best.pt").is_file()
        final = float((run_dir / "eval.csv").read_text().splitlines()[-1].split(",")[1])
        assert t.value == pytest.approx(final)  # metric eval_return: the last evaluation


def test_report_writes_the_best_trials_table_and_plots(two_workers, capsys):
    tmp, sweep_file, study = two_workers
    report = tmp / "docs" / "sweeps" / "tiny"
    assert main(["sweep", str(sweep_file), "--out", str(tmp / "out"), "--n-trials", "0",
                 "--report", str(report)]) == 0
    assert f"report: {report / 'best_trials.md'}" in capsys.readouterr().out
    table = (report / "best_trials.md").read_text()
    best = study.best_trial
    assert "Trials: 2 complete." in table
    assert f"| 1 | {best.number} | {best.value:.2f} |" in table
    assert sum(line.startswith("| ") and "trial-" in line for line in table.splitlines()) == 2
    for png in ("optimization_history.png", "intermediate_values.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in table


def test_a_pruned_trial_is_recorded_as_pruned_and_its_run_stays_usable(tmp_path, capsys):
    # Pendulum returns are negative: a threshold pruner at 0 prunes at the first evaluation.
    sweep_file = _write(tmp_path / "sweep.yaml", pruner={"type": "threshold", "lower": 0.0})
    out = tmp_path / "out"
    assert main(["sweep", str(sweep_file), "--out", str(out), "--n-trials", "1"]) == 0
    (trial,) = optuna.load_study(study_name="tiny", storage=default_storage(out)).get_trials()
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [200]
    run_dir = out / "trial-0000"
    assert (run_dir / "eval.csv").read_text().splitlines()[1:] and len(
        (run_dir / "eval.csv").read_text().splitlines()) == 2  # stopped after the first eval
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    capsys.readouterr()
    assert main(["eval", "--run", str(run_dir), "--episodes", "1"]) == 0
    assert "trained 200 steps" in capsys.readouterr().out


def test_default_pruner_is_median_and_eval_every_0_is_refused_for_pruning(tmp_path):
    sweep = parse_sweep({"config": TINY, "space": SPACE}, tmp_path / "s.yaml")
    assert sweep.pruner == {"type": "median"} and sweep.name == "s"
    with pytest.raises(SweepError, match="eval_every"):
        parse_sweep({"config": {**TINY, "eval_every": 0}, "space": SPACE})


@pytest.mark.parametrize("space, named", [
    ({"critic_lrr": {"type": "float", "low": 1e-4, "high": 1e-3}}, "did you mean 'critic_lr'"),
    ({"hidden": {"type": "float", "low": 16, "high": 64}}, "'hidden'"),
    ({"batch_size": {"type": "float", "low": 32.5, "high": 64}}, "use type: int"),
    ({"gamma": {"type": "uniform", "low": 0.9, "high": 0.99}}, "unknown distribution type"),
    ({"gamma": {"type": "float", "low": 0.9, "high": 1.0}}, "'gamma': value 1.0 is refused"),
    ({"algo": {"type": "categorical", "choices": ["sac", "ppo"]}}, "choice 'ppo'"),
    ({"seed": {"type": "int", "low": 1, "high": 5}}, "seeds:"),
    ({"env_kwargs.no_such_arg": {"type": "float", "low": 1, "high": 2}}, "env_kwargs.no_such"),
])
def test_a_bad_space_fails_before_training_naming_the_field(tmp_path, capsys, space, named):
    sweep_file = _write(tmp_path / "bad.yaml", space=space)
    out = tmp_path / "out"
    assert main(["sweep", str(sweep_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert named in err and err.startswith("robotac sweep: error: ")
    assert not out.exists()  # nothing trained, no study created
