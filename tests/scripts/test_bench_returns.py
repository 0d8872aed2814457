"""scripts/bench_returns.py: runs continue across sessions from their checkpoints."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_returns  # noqa: E402


def _steps(run_dir: Path) -> list[int]:
    with open(run_dir / "eval.csv") as f:
        return [int(float(r["global_step"])) for r in csv.DictReader(f)]


def test_a_second_call_resumes_unfinished_runs_and_skips_finished_ones(tmp_path, capsys):
    common = ["--envs", "Pendulum-v1", "--algos", "sac", "--seeds", "0", "--eval-every", "200",
              "--checkpoint-every", "200", "--out", str(tmp_path), "--", "--learning-starts",
              "100", "--batch-size", "32", "--eval-episodes", "1", "--hidden", "16", "16"]
    assert bench_returns.main(["--steps", "400", *common]) == 0
    run = tmp_path / "Pendulum-v1__sac__s0"
    assert _steps(run) == [200, 400]
    # A longer budget: the same run continues from its 400-step checkpoint, not from scratch.
    assert bench_returns.main(["--steps", "600", *common]) == 0
    assert _steps(run) == [200, 400, 600]
    assert "at step 400" in (tmp_path / "Pendulum-v1__sac__s0.log").read_text()
    rows = bench_returns.collect(tmp_path)
    assert [r["global_step"] for r in rows] == [200, 400, 600]
    capsys.readouterr()
    assert bench_returns.main(["--steps", "600", *common]) == 0
    assert "already finished" in capsys.readouterr().out


def test_collect_keeps_the_last_row_of_a_step_evaluated_twice(tmp_path):
    run = tmp_path / "Hopper-v5__td3__s1"
    run.mkdir()
    (run / "eval.csv").write_text("global_step,mean_return,std_return\n"
                                  "100,1.0,0.1\n200,2.0,0.2\n200,3.0,0.3\n300,4.0,0.4\n")
    rows = bench_returns.collect(tmp_path)
    assert [(r["global_step"], r["mean_return"]) for r in rows] == [(100, 1.0), (200, 3.0),
                                                                    (300, 4.0)]
    assert {(r["algo"], r["env"], r["seed"]) for r in rows} == {("td3", "Hopper-v5", 1)}


def test_the_sb3_peer_writes_the_same_csv_and_continues_from_its_saved_model(tmp_path):
    common = ["--envs", "Pendulum-v1", "--algos", "--seeds", "3", "--sb3", "--eval-every", "200",
              "--checkpoint-every", "200", "--out", str(tmp_path)]
    assert bench_returns.main(["--steps", "400", *common]) == 0
    run = tmp_path / "Pendulum-v1__sb3_sac__s3"
    assert _steps(run) == [200, 400]
    assert bench_returns.main(["--steps", "600", *common]) == 0
    assert _steps(run) == [200, 400, 600]
    assert "resumed Pendulum-v1__sb3_sac__s3 at step 400" in (
        tmp_path / "Pendulum-v1__sb3_sac__s3.log").read_text()
    rows = bench_returns.collect(tmp_path)
    assert {(r["algo"], r["seed"]) for r in rows} == {("sb3_sac", 3)}
    assert all(r["mean_return"] < 0 for r in rows)  # Pendulum returns are negative


def test_the_mean_over_seeds_stops_where_a_seed_has_not_been_evaluated_yet():
    def row(seed, step, ret):
        return {"algo": "td3", "env": "HalfCheetah-v5", "seed": seed, "global_step": step,
                "mean_return": ret, "std_return": 0.0}

    rows = [row(0, 10, 1.0), row(0, 20, 3.0), row(0, 30, 5.0),
            row(1, 10, 3.0), row(1, 20, 5.0)]  # seed 1 still running
    steps, mean, std = bench_returns.mean_over_seeds(rows)
    assert steps == [10, 20]
    assert mean.tolist() == [2.0, 4.0]
    assert std.tolist() == [1.0, 1.0]
    steps, mean, _ = bench_returns.mean_over_seeds(rows[:3])  # one seed: its own curve
    assert steps == [10, 20, 30] and mean.tolist() == [1.0, 3.0, 5.0]


def test_crossq_against_the_sb3_contrib_peer_at_shared_settings(tmp_path, capsys):
    """--sb3-algo crossq: sb3-contrib's CrossQ beside robotac's, the shared settings given to
    both (robotac's flags; the peer's constructor), and env steps/s from sessions.csv."""
    args = ["--envs", "Pendulum-v1", "--algos", "crossq", "--seeds", "0", "--sb3", "0",
            "--sb3-algo", "crossq", "--steps", "400", "--eval-every", "200",
            "--checkpoint-every", "400", "--learning-starts", "200", "--critic-hidden", "32",
            "32", "--batch-renorm-warmup", "50", "--jobs", "2", "--out", str(tmp_path), "--",
            "--batch-size", "32", "--eval-episodes", "1", "--hidden", "16", "16"]
    assert bench_returns.main(args) == 0
    for algo in ("crossq", "sb3_crossq"):
        assert _steps(tmp_path / f"Pendulum-v1__{algo}__s0") == [200, 400]
    cfg = (tmp_path / "Pendulum-v1__crossq__s0" / "config.json").read_text()
    assert '"critic_hidden": [\n    32,\n    32\n  ]' in cfg and '"batch_renorm_warmup": 50' in cfg
    speed = bench_returns.steps_per_second(tmp_path)
    assert set(speed) == {"Pendulum-v1__crossq__s0", "Pendulum-v1__sb3_crossq__s0"}
    assert all(v > 0 for v in speed.values())
    table = capsys.readouterr().out
    assert "| sb3_crossq | Pendulum-v1 | 400 | 1 |" in table and "| crossq | Pendulum-v1 |" in table
    import gymnasium as gym

    peer = bench_returns.sb3_model({"algo": "crossq", "learning_starts": 200,
                                    "critic_hidden": [32, 32], "batch_renorm_warmup": 50},
                                   gym.make("Pendulum-v1"), 0)
    assert peer.learning_starts == 200 and peer.policy_delay == 3 and peer.learning_rate == 1e-3
    assert peer.critic.qf0[0].warmup_steps == 50 and peer.critic.qf0[1].out_features == 32
