"""``robotac`` CLI: train with a recipe file and overrides, eval, resume, errors as exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from robotac.cli import main, parse_train_args

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--total-steps", "300", "--learning-starts", "100", "--batch-size", "32",
        "--hidden", "16", "16", "--eval-every", "0", "--eval-episodes", "2", "--no-progress",
        "--no-video", "--no-export"]


def test_recipe_file_then_command_line_overrides(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("env: Pendulum-v1\nalgo: td3\nbatch_size: 64\nhidden: [32, 32]\n"
                      "env_kwargs:\n  g: 9.81\n")
    cfg = parse_train_args(["--config", str(recipe), "--batch-size", "128", "--seed", "7"])
    assert (cfg.env_id, cfg.algo, cfg.batch_size, cfg.seed) == ("Pendulum-v1", "td3", 128, 7)
    assert cfg.hidden == (32, 32) and cfg.env_kwargs == {"g": 9.81}
    cfg = parse_train_args(["--env", "HalfCheetah-v5", "--algo", "ddpg"])
    assert (cfg.env_id, cfg.algo) == ("HalfCheetah-v5", "ddpg")


def test_the_recipe_trains_another_robot_with_robot(tmp_path):
    """``--robot NAME`` (the ``robot:`` recipe key) puts the robot into the env kwargs of the
    steer recipe unchanged, and an env_kwargs robot that says otherwise is refused."""
    from robotac.config import ConfigError, resolved, validate

    steer = str(ROOT / "recipes" / "quadruped_steer.yaml")
    cfg = resolved(parse_train_args(["--config", steer, "--robot", "quadruped_xl"]))
    assert cfg.robot == "quadruped_xl" and cfg.env_kwargs["robot"] == "quadruped_xl"
    assert cfg.env_kwargs["tracking_sigma"] == 0.1  # the recipe's other kwargs stay
    validate(cfg)
    assert "robot" not in resolved(parse_train_args(["--config", steer])).env_kwargs
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("env: robotac/Quadruped-v0\nrobot: quadruped_xl\n"
                      "env_kwargs:\n  robot: quadruped\n")
    with pytest.raises(ConfigError, match=r"config field robot='quadruped_xl' is invalid: "
                                          r"env_kwargs names another robot, 'quadruped'"):
        validate(resolved(parse_train_args(["--config", str(recipe)])))


def test_train_eval_and_resume_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--env", "Pendulum-v1", "--algo", "sac", "--run-dir", str(run),
                 "--stop-after-steps", "200", "--checkpoint-every", "200", *TINY]) == 0
    assert "continue with: robotac train --resume" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"resumed {run} at step 200" in out and "final evaluation return" in out
    assert main(["eval", "--run", str(run), "--episodes", "2", "--which", "latest"]) == 0
    out = capsys.readouterr().out
    assert "sac on Pendulum-v1 (latest, trained 300 steps): mean return" in out
    assert json.loads((run / "config.json").read_text())["total_steps"] == 300


def test_bad_input_exits_with_code_2_and_a_message(tmp_path, capsys):
    assert main(["train", "--env", "NoSuchEnv-v0", "--run-dir", str(tmp_path / "a"), *TINY]) == 2
    assert "unknown environment id 'NoSuchEnv-v0'" in capsys.readouterr().err
    assert main(["train", "--env", "Pendulum-v1", "--tau", "-1", *TINY]) == 2
    assert "tau=-1.0 is invalid" in capsys.readouterr().err
    assert main(["eval", "--run", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert main(["frobnicate"]) == 2


def test_console_script_and_train_script_share_the_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--help"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and "--learning-starts" in proc.stdout
    assert "--env" in proc.stdout and "--config FILE.yaml" in proc.stdout
