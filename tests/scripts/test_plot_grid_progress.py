"""scripts/plot_grid_progress.py: grid scores per checkpoint, and the figure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scripts.plot_grid_progress import grid_score, load_run, main, step_of


def _row(exy: float, eyaw: float, falls: int = 0) -> dict:
    return {"err_xy_m_s": exy, "err_yaw_rad_s": eyaw, "falls": falls}


def test_a_command_counts_only_when_both_errors_are_within_and_it_did_not_fall() -> None:
    s = grid_score([_row(0.05, 0.1), _row(0.1, 0.2), _row(0.11, 0.0), _row(0.0, 0.21),
                    _row(float("nan"), float("nan"), falls=1), _row(0.01, 0.01, falls=1)])
    assert s["met"] == 2 and s["n"] == 6 and s["falls"] == 2
    assert s["mean_err_xy_m_s"] == pytest.approx(np.mean([0.05, 0.1, 0.11, 0.0, 0.01]))


def test_runs_are_read_in_step_order_and_plotted(tmp_path, capsys) -> None:
    for step, err in ((120000, 0.05), (40000, 0.3)):
        rows = [_row(err, 0.0), _row(0.02, 0.0)]
        (tmp_path / f"s1_{step}.json").write_text(json.dumps(
            {"settings": {"off": {"rows": rows}, "on": {"rows": rows}}}))
    points = load_run(str(tmp_path / "s1_*.json"))
    assert [p[0] for p in points] == [40000, 120000]
    assert [p[1]["off"]["met"] for p in points] == [1, 2]
    out = tmp_path / "fig.png"
    assert main(["--run", f"seed 1={tmp_path}/s1_*.json", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    assert "| seed 1 | 120000 | randomization on | 2/2 |" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no grid JSON files match"):
        load_run(str(tmp_path / "none_*.json"))
    with pytest.raises(ValueError, match="no env step in the file name"):
        step_of("grid.json")
