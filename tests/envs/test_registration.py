"""Registration, make_env (dm_control flattening), vector envs, and envs/__init__ staying light."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.registration import ENV_IDS, make_env, register_envs


def test_register_envs_is_idempotent() -> None:
    register_envs()
    register_envs()
    for env_id in (*ENV_IDS, "dm_control/walker-walk-v0"):
        assert env_id in gym.envs.registry


def test_dm_control_walker_is_flat_float32() -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make_env("dm_control/walker-walk-v0")
    assert isinstance(env.observation_space, gym.spaces.Box)
    assert env.observation_space.shape == (24,)  # orientations 14 + height 1 + velocity 9
    assert env.observation_space.dtype == np.float32
    assert env.action_space.dtype == np.float32 and env.action_space.shape == (6,)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (24,)
    obs, r, term, trunc, _ = env.step(env.action_space.sample())
    assert obs.dtype == np.float32 and np.isfinite(r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
        sb3_check_env(make_env("dm_control/walker-walk-v0"), warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_async_vector_env(env_id: str) -> None:
    venv = gym.vector.AsyncVectorEnv([lambda: make_env(env_id)] * 2)
    try:
        obs, infos = venv.reset(seed=[0, 1])
        assert obs.shape == (2, *make_env(env_id).observation_space.shape)
        assert obs.dtype == np.float32
        assert not np.array_equal(obs[0], obs[1])
        for _ in range(3):
            obs, rewards, term, trunc, infos = venv.step(venv.action_space.sample())
            assert rewards.shape == (2,) and np.isfinite(rewards).all()
            # The per-env reward terms come back through the worker processes and add up.
            terms = {k: v for k, v in infos["reward_terms"].items() if not k.startswith("_")}
            assert terms
            np.testing.assert_allclose(sum(terms.values()), rewards, rtol=1e-6, atol=1e-12)
    finally:
        venv.close()


def test_unknown_id_names_close_matches() -> None:
    with pytest.raises(gym.error.Error, match="Quadruped"):
        make_env("robotac/Quadrupd-v0")


def test_envs_package_stays_import_light() -> None:
    code = (
        "import sys, envs, envs.interface; "
        "heavy = {'gymnasium', 'mujoco', 'torch', 'dm_control'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_bench_script_runs(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_envs.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--steps", "20", "--rounds", "1"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    for env_id in ("robotac/Quadruped-v0", "robotac/Reach7-v0", "Ant-v5"):
        assert env_id in out
    ant_line = next(line for line in out.splitlines() if line.startswith("Ant-v5"))
    assert ant_line.split()[-1] == "1.00"


def _python(code: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=root,
                          capture_output=True, text=True, timeout=120)


def test_import_robotac_registers_its_ids_as_gymnasium_expects() -> None:
    """A fresh interpreter: ``import robotac`` then ``gymnasium.make`` (Gymnasium's convention)."""
    proc = _python(
        """
        import sys
        import gymnasium
        assert "robotac/Quadruped-v0" not in gymnasium.registry
        import robotac
        env = gymnasium.make("robotac/Quadruped-v0")
        obs, _ = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        print(obs.shape, env.spec.max_episode_steps, sorted(gymnasium.registry.keys() & {
            "robotac/Quadruped-v0", "robotac/Reach7-v0"}), "dm_control" in sys.modules)
        """
    )
    assert proc.returncode == 0, proc.stderr
    # Both ids; shimmy's dm_control namespace is not robotac's to import.
    assert proc.stdout.split() == ["(45,)", "1000", "['robotac/Quadruped-v0',",
                                   "'robotac/Reach7-v0']", "False"]


def test_import_robotac_works_with_only_the_base_dependencies() -> None:
    """The robot's computer has numpy, onnxruntime and pyserial: no gymnasium, torch or mujoco."""
    proc = _python(
        """
        import importlib.abc, sys
        BLOCKED = ("torch", "mujoco", "gymnasium", "dm_control", "shimmy")
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        sys.meta_path.insert(0, Blocker())
        import robotac
        print(robotac.__version__)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0.1.0"
