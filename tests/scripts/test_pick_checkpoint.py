"""scripts/pick_checkpoint.py: grade a run's kept checkpoints on the grid, pick the best."""

from __future__ import annotations

import json

import pytest

from scripts.pick_checkpoint import (
    command_score,
    commands_tracked,
    main,
    rank_key,
    smooth_targets_count,
)


def _row(err_xy: float, err_yaw: float, falls: int = 0) -> dict:
    return {"err_xy_m_s": err_xy, "err_yaw_rad_s": err_yaw, "falls": falls}


def test_command_score_is_the_worst_error_in_tolerances():
    assert command_score(_row(0.05, 0.1)) == pytest.approx(0.5)
    assert command_score(_row(0.02, 0.3)) == pytest.approx(1.5)
    assert command_score(_row(float("nan"), 0.0)) == float("inf")
    rows = [_row(0.1, 0.0), _row(0.0, 0.2), _row(0.101, 0.0), _row(0.0, 0.0, falls=1)]
    assert commands_tracked(rows) == 2  # on the tolerance is tracked; a fall is not


def _smooth(feet=1.0, dq=0.0, dtarget=0.0, rev=0.0, binds=0.0, hf=0.0, zero=True) -> dict:
    z = {"feet_down_share": feet, "mean_abs_dq_rad_s": dq, "mean_abs_dtarget_rad": dtarget}
    return {"zero_command": z if zero else None, "max_reversal_share": rev,
            "max_filter_bind_share": binds, "max_hf_power_share": hf}


def test_smooth_targets_count_counts_each_target():
    assert smooth_targets_count(_smooth()) == 6
    assert smooth_targets_count(_smooth(binds=0.9)) == 5
    assert smooth_targets_count(_smooth(feet=0.5, dq=0.3, dtarget=0.07, rev=0.7)) == 2
    assert smooth_targets_count(_smooth(zero=False)) == 3


def test_rank_prefers_commands_then_smoothness_then_margin():
    a = {"commands_tracked": 16, "smooth_targets": 4, "worst_score": 0.95}
    b = {"commands_tracked": 15, "smooth_targets": 6, "worst_score": 0.10}
    c = {"commands_tracked": 16, "smooth_targets": 5, "worst_score": 0.99}
    d = {"commands_tracked": 16, "smooth_targets": 5, "worst_score": 0.60}
    assert max([a, b, c, d], key=rank_key) is d
    assert sorted([a, b, c, d], key=rank_key) == [b, a, c, d]


def test_tiny_run_end_to_end(tmp_path, capsys):
    """A 200-step quadruped run keeping its policy every 100 steps: both kept checkpoints are
    graded on the whole grid and the pick is the best by rank_key."""
    from robotac.config import TrainConfig
    from robotac.train import train

    run = tmp_path / "run"
    train(TrainConfig(env_id="robotac/Quadruped-v0", algo="sac", seed=0, total_steps=200,
                      learning_starts=100, batch_size=32, hidden=(16, 16), buffer_size=1000,
                      eval_every=0, eval_episodes=1, keep_every=100, run_dir=str(run),
                      progress=False, video=False, export=False))
    out = tmp_path / "picked.json"
    assert main(["--run", str(run), "--episodes", "1", "--episode-s", "1.2",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    graded = result["graded"]
    assert [g["step"] for g in graded] == [100, 200]
    for g in graded:
        assert g["commands"] == len(g["rows"]) >= 10
        assert g["commands_tracked"] == commands_tracked(g["rows"])
        assert 0 <= g["smooth_targets"] <= 6
    assert result["picked_step"] == max(graded, key=rank_key)["step"]
    text = capsys.readouterr().out
    assert f"--which step_{result['picked_step']}" in text and "(picked)" in text
    # only the steps asked; the same grades from a process pool
    assert main(["--run", str(run), "--from-step", "150", "--episodes", "1", "--episode-s",
                 "1.2", "--jobs", "2", "--json", str(out)]) == 0
    pooled = json.loads(out.read_text())["graded"]
    assert [g["step"] for g in pooled] == [200]
    assert pooled[0]["commands_tracked"] == graded[1]["commands_tracked"]
    for a, b in zip(pooled[0]["rows"], graded[1]["rows"], strict=True):
        assert a["command"] == b["command"]
        assert a["err_xy_m_s"] == pytest.approx(b["err_xy_m_s"], abs=1e-6)
        assert a["err_yaw_rad_s"] == pytest.approx(b["err_yaw_rad_s"], abs=1e-6)


def test_a_run_without_kept_checkpoints_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(SystemExit):
        main(["--run", str(tmp_path)])
    assert "keep_every" in capsys.readouterr().err


def test_which_names_a_kept_checkpoint_or_is_refused(capsys):
    from robotac.cli import main as cli_main

    with pytest.raises(SystemExit):
        cli_main(["eval", "--run", "r", "--which", "newest"])
    assert "best, latest or step_N" in capsys.readouterr().err
