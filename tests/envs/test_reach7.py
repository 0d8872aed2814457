"""robotac/Reach7-v0: per-joint bounds, spec tables, rewards, success, errors."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.reach7 import REACH7_OBS_LAYOUT, Reach7Env
from envs.registration import make_env


def _table_rows(doc: str, first_header: str) -> list[list[str]]:
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_check_env_gymnasium_and_sb3() -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(Reach7Env(), skip_render_check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3's advice to use symmetric [-1, 1] actions
        sb3_check_env(Reach7Env(), warn=True)


def test_action_bounds_differ_per_joint_and_come_from_ctrlrange() -> None:
    env = make_env("robotac/Reach7-v0")
    space = env.action_space
    m = env.unwrapped.model
    np.testing.assert_array_equal(space.low, m.actuator_ctrlrange[:, 0].astype(np.float32))
    np.testing.assert_array_equal(space.high, m.actuator_ctrlrange[:, 1].astype(np.float32))
    assert len(set(np.round(space.high - space.low, 4))) >= 3
    assert len(set(np.round(space.low, 4))) >= 3
    assert env.observation_space.shape == (23,) and env.observation_space.dtype == np.float32
    iface = env.unwrapped.interface
    np.testing.assert_allclose(iface.action_low_rad, m.actuator_ctrlrange[:, 0])
    assert env.spec.max_episode_steps == 200


def test_docstring_tables_match_model() -> None:
    doc = inspect.cleandoc(Reach7Env.__doc__)
    env = Reach7Env()
    rows = _table_rows(doc, "| Index | Joint | Min | Max | Unit |")
    assert len(rows) == env.model.nu
    for i, (idx, name, lo, hi, unit) in enumerate(rows):
        assert int(idx) == i and name == env.model.actuator(i).name and unit == "rad"
        np.testing.assert_allclose([float(lo), float(hi)], env.model.actuator_ctrlrange[i])
    rows = _table_rows(doc, "| Index | Block | Size | Unit | Scale |")
    assert [r[1] for r in rows] == [b.name for b in REACH7_OBS_LAYOUT.blocks]
    for r, b in zip(rows, REACH7_OBS_LAYOUT.blocks, strict=True):
        assert (int(r[2]), r[3], float(r[4])) == (b.size, b.unit, b.scale)
        sl = REACH7_OBS_LAYOUT.slices()[b.name]
        assert r[0] == f"{sl.start}-{sl.stop - 1}"


def test_reward_terms_sum_and_reaching_succeeds() -> None:
    env = Reach7Env()
    obs, info = env.reset(seed=0)
    # Drive the joints to the configuration that produced a reachable target.
    target = obs[17:20]
    for _ in range(5):
        _, r, term, trunc, info = env.step(env.action_space.sample())
        assert r == pytest.approx(sum(info["reward_terms"].values()), abs=1e-12)
        assert info["reward_dist"] == pytest.approx(-info["distance_m"])
        assert not term and not trunc
    # A target placed at the current fingertip is reached (distance < 5 cm) by holding still.
    obs, info = env.reset(seed=1)
    tip = obs[14:17].astype(np.float64)
    obs, info = env.reset(seed=1, options={"target": tip})
    hold = env.data.qpos.astype(np.float32)
    for _ in range(10):
        _, r, _, _, info = env.step(hold)
    assert info["is_success"] and info["distance_m"] < 0.01
    assert r > -0.01
    assert target[2] > 0.1


def test_same_seed_same_trajectory() -> None:
    def run(seed: int) -> np.ndarray:
        env = Reach7Env()
        env.action_space.seed(seed)
        out = [env.reset(seed=seed)[0]]
        for _ in range(20):
            out.append(env.step(env.action_space.sample())[0])
        return np.array(out)

    np.testing.assert_array_equal(run(2), run(2))
    assert not np.array_equal(run(2), run(3))


def test_bad_input() -> None:
    env = Reach7Env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected \(7,\)"):
        env.step(np.zeros(12, np.float32))
    a = np.zeros(7, np.float32)
    a[6] = np.nan
    with pytest.raises(ValueError, match=r"indices \[6\]"):
        env.step(a)
    with pytest.raises(TypeError, match=r"\['speed'\].*ctrl_cost_weight"):
        Reach7Env(speed=2)

