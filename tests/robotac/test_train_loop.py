"""The training loop's outputs, load_policy's contract, and clear errors on bad input."""

import dataclasses
import json
import os

import gymnasium as gym
import numpy as np
import pytest
import torch

from policies.networks import DeterministicActor, RunningNorm, SquashedGaussianActor
from robotac.checkpoint import CheckpointError, load_checkpoint, load_policy
from robotac.config import ConfigError, TrainConfig, resolved, validate
from robotac.env_utils import EnvError, check_spaces, episode_seed, make_vector_env
from robotac.train import RunDirError, train, transition_next_obs


def _cfg(run_dir, **kw) -> TrainConfig:
    base = dict(
        env_id="Pendulum-v1", algo="sac", seed=0, total_steps=400, learning_starts=200,
        batch_size=32, hidden=(16, 16), eval_every=200, eval_episodes=2, checkpoint_every=200,
        log_every=100, run_dir=str(run_dir), progress=False, video=False, export=False,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_transition_next_obs_takes_the_final_obs_of_envs_that_ended():
    # Same-step autoreset: the step that ends an episode returns the reset obs of the next one;
    # the stored transition must end in the episode's last obs instead.
    envs = make_vector_env("Pendulum-v1", {"max_episode_steps": 3}, 2, seed=0)
    action = np.zeros((2, 1), dtype=np.float32)
    try:
        envs.reset()
        for _ in range(2):
            next_obs, _, _, truncated, info = envs.step(action)
            assert not truncated.any()
            assert transition_next_obs(next_obs, info) is next_obs
        next_obs, _, terminated, truncated, info = envs.step(action)
    finally:
        envs.close()
    assert truncated.all() and not terminated.any()
    real = transition_next_obs(next_obs, info)
    for i in range(2):
        # The same episode replayed in a single env: its third obs is the transition's end.
        single = gym.make("Pendulum-v1")
        single.reset(seed=episode_seed(0, i, 0))
        for _ in range(3):
            final, *_ = single.step(action[i])
        single.close()
        np.testing.assert_array_equal(real[i], final)
        assert not np.allclose(real[i], next_obs[i])  # next_obs holds the reset obs
    # Only the rows of envs that ended are replaced.
    info = {"final_obs": info["final_obs"], "_final_obs": np.array([False, True])}
    mixed = transition_next_obs(next_obs, info)
    np.testing.assert_array_equal(mixed[0], next_obs[0])
    np.testing.assert_array_equal(mixed[1], real[1])


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "sac"
    result = train(_cfg(run_dir, num_envs=2))
    return run_dir, result


def test_run_directory_layout(sac_run):
    run_dir, result = sac_run
    assert result.global_step == 400 and not result.stopped_early
    for rel in ("config.json", "episodes.csv", "eval.csv", "learning_curve.png",
                "checkpoints/latest.pt", "checkpoints/best.pt"):
        assert (run_dir / rel).is_file(), rel
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["env_id"] == "Pendulum-v1" and cfg["algo"] == "sac" and cfg["policy_delay"] == 1
    assert cfg["run_dir"] == str(run_dir)
    # 2 envs x 400 steps / 200-step episodes: 2 episodes each
    rows = (run_dir / "episodes.csv").read_text().strip().splitlines()
    assert rows[0] == "global_step,episodic_return,episodic_length" and len(rows) == 1 + 2
    assert [r.split(",")[0] for r in (run_dir / "eval.csv").read_text().splitlines()[1:]] == [
        "200", "400"]
    assert not list((run_dir / "checkpoints").glob("*.tmp"))  # atomic writes leave no temp
    # Readable by another user or a deploy service (mkstemp's 0600 is not kept), umask 022.
    for rel in ("checkpoints/latest.pt", "checkpoints/best.pt"):
        assert (run_dir / rel).stat().st_mode & 0o777 == 0o666 & ~_umask(), rel


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_tensorboard_tags_follow_cleanrl(sac_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = sac_run
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {"charts/episodic_return", "charts/episodic_length", "charts/SPS",
                "losses/qf_loss", "losses/actor_loss", "losses/alpha", "losses/q_mean",
                "charts/entropy", "eval/mean_return"}
    assert expected <= tags, expected - tags


@pytest.mark.numeric
def test_load_policy_contract(sac_run):
    run_dir, result = sac_run
    bundle = load_policy(run_dir)  # best
    assert isinstance(bundle.actor, SquashedGaussianActor) and not bundle.actor.training
    assert isinstance(bundle.obs_norm, RunningNorm) and bundle.obs_norm.count.item() > 0
    assert (bundle.algo, bundle.env_id, bundle.env_kwargs, bundle.obs_dim) == (
        "sac", "Pendulum-v1", {}, 3)
    assert bundle.action_low.dtype == np.float32 and bundle.action_low.tolist() == [-2.0]
    assert bundle.action_high.tolist() == [2.0]
    assert bundle.interface is None  # Pendulum publishes no robot interface
    assert bundle.config["hidden"] == [16, 16]
    assert bundle.eval_return == result.best_eval_return
    obs = np.zeros((5, 3), dtype=np.float32)
    with torch.no_grad():
        a = bundle.actor.deterministic(bundle.obs_norm(torch.as_tensor(obs)))
    assert a.shape == (5, 1) and (a.abs() <= 2).all()
    # One row against a batch of five: other float32 matmul kernels, a few ulp of actions in
    # [-2, 2] (1 ulp = 2.4e-7 at 2); assert_allclose's default rtol 1e-7 was below one ulp.
    np.testing.assert_allclose(bundle.act(obs[0]), a[0].numpy(), rtol=0, atol=1e-6)
    latest = load_policy(run_dir, "latest")
    assert latest.global_step == 400
    with pytest.raises(ValueError, match="'best', 'latest' or 'step_N'"):
        load_policy(run_dir, "newest")


def test_keep_every_keeps_the_policy_at_each_crossing(tmp_path):
    from robotac.checkpoint import checkpoint_path, kept_steps, load_checkpoint

    run_dir = tmp_path / "kept"
    train(_cfg(run_dir, keep_every=100))
    assert kept_steps(run_dir) == [100, 200, 300, 400]
    kept = load_checkpoint(checkpoint_path(run_dir, "step_200"))
    assert kept["kind"] == "step" and "buffer" not in kept and "loop" not in kept
    assert kept["meta"]["global_step"] == 200
    obs = np.linspace(-1, 1, 3, dtype=np.float32)
    last, latest = load_policy(run_dir, "step_400"), load_policy(run_dir, "latest")
    assert last.global_step == 400
    np.testing.assert_allclose(last.act(obs), latest.act(obs), rtol=0, atol=1e-6)
    first = load_policy(run_dir, "step_100")  # before learning_starts: the initial actor
    assert first.global_step == 100
    assert not np.allclose(first.act(obs), last.act(obs), rtol=0, atol=1e-4)
    assert kept_steps(tmp_path / "nothing") == []
    assert kept_steps(tmp_path / "kept") == [100, 200, 300, 400]
    with pytest.raises(ValueError, match="step_N"):
        checkpoint_path(run_dir, "step_")


def test_keep_every_may_change_on_resume(tmp_path):
    from robotac.checkpoint import kept_steps

    run_dir = tmp_path / "r"
    train(_cfg(run_dir, stop_after_steps=200))
    assert kept_steps(run_dir) == []
    result = train(dataclasses.replace(_cfg(run_dir, keep_every=100), resume=str(run_dir),
                                       run_dir=None))
    assert result.global_step == 400 and kept_steps(run_dir) == [300, 400]


def test_td3_and_ddpg_runs_load_deterministic_actors(tmp_path):
    for algo in ("td3", "ddpg"):
        train(_cfg(tmp_path / algo, algo=algo, total_steps=250))
        bundle = load_policy(tmp_path / algo)
        assert isinstance(bundle.actor, DeterministicActor) and bundle.algo == algo


def test_existing_run_directory_is_never_overwritten(sac_run):
    run_dir, _ = sac_run
    before = (run_dir / "checkpoints" / "latest.pt").read_bytes()
    with pytest.raises(RunDirError, match="already exists"):
        train(_cfg(run_dir))
    assert (run_dir / "checkpoints" / "latest.pt").read_bytes() == before


@pytest.mark.parametrize(
    "change,match",
    [
        ({"tau": -0.1}, "tau"),
        ({"gamma": 1.0}, "gamma"),
        ({"batch_size": 2000, "buffer_size": 1000, "learning_starts": 2000}, "larger than"),
        ({"learning_starts": 10}, "learning_starts"),
        ({"num_envs": 0}, "num_envs"),
        ({"keep_every": -1}, "keep_every"),
        ({"actor_lr": float("nan")}, "actor_lr"),
        ({"hidden": ()}, "hidden"),
        ({"env_id": None}, "no environment"),
        ({"algo": "td3", "ou_noise": True}, r"ou_noise=True .*DDPG's.*--algo ddpg"),
        ({"algo": "sac", "ou_noise": True}, r"ou_noise=True .*DDPG's"),
        ({"num_threads": 4096}, r"num_threads=4096 .*CPU core.*--num-threads"),
    ],
)
def test_out_of_range_config_is_a_clear_error(tmp_path, change, match):
    with pytest.raises(ConfigError, match=match):
        train(_cfg(tmp_path / "x", **change))
    assert not (tmp_path / "x").exists()  # nothing written


def test_unknown_env_id_is_a_clear_error(tmp_path):
    with pytest.raises(EnvError, match="unknown environment id 'NoSuchEnv-v9'"):
        train(_cfg(tmp_path / "x", env_id="NoSuchEnv-v9"))
    assert not (tmp_path / "x").exists()


def test_discrete_and_unbounded_action_spaces_are_refused(tmp_path):
    with pytest.raises(EnvError, match="1-D Box"):
        train(_cfg(tmp_path / "x", env_id="CartPole-v1"))

    class Unbounded(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
        action_space = gym.spaces.Box(np.array([-1, -np.inf], np.float32),
                                      np.array([1, np.inf], np.float32))

    with pytest.raises(EnvError, match=r"unbounded action space \(dimensions \[1\]"):
        check_spaces(Unbounded(), "Unbounded-v0")

    class Empty(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
        action_space = gym.spaces.Box(np.array([-1, 2, 0], np.float32),
                                      np.array([1, 2, 1], np.float32))

    with pytest.raises(EnvError, match=r"high <= low in dimensions \[1\].*ctrlrange"):
        check_spaces(Empty(), "Empty-v0")


def test_resume_refuses_another_env_or_algorithm(sac_run):
    run_dir, _ = sac_run
    with pytest.raises(CheckpointError, match="trained on env 'Pendulum-v1', not 'HalfCheetah"):
        train(TrainConfig(env_id="HalfCheetah-v5", resume=str(run_dir), progress=False))
    with pytest.raises(CheckpointError, match="algorithm 'sac', not 'td3'"):
        train(TrainConfig(algo="td3", resume=str(run_dir), progress=False))
    with pytest.raises(ConfigError, match="changed settings: batch_size=64"):
        train(TrainConfig(batch_size=64, resume=str(run_dir), progress=False))


def test_corrupt_or_foreign_checkpoint_is_a_clear_error(tmp_path, sac_run):
    run_dir, _ = sac_run
    data = (run_dir / "checkpoints" / "best.pt").read_bytes()
    bad = tmp_path / "run" / "checkpoints"
    bad.mkdir(parents=True)
    (bad / "best.pt").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_policy(tmp_path / "run")
    torch.save({"weights": torch.zeros(3)}, bad / "latest.pt")
    with pytest.raises(CheckpointError, match="not a robotac-checkpoint-v1"):
        load_checkpoint(bad / "latest.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nowhere")


def test_without_normalization_the_normalizer_is_the_identity(tmp_path):
    train(_cfg(tmp_path / "raw", normalize_obs=False, total_steps=250))
    bundle = load_policy(tmp_path / "raw")
    x = torch.tensor([[1e3, -50.0, 7.0]])
    assert torch.equal(bundle.obs_norm(x), x)  # no statistics, no clipping at obs_clip


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train(_cfg(tmp_path / "x", device="cuda"))


@pytest.mark.numeric
def test_same_seed_same_run(tmp_path):
    a = train(_cfg(tmp_path / "a", total_steps=300))
    b = train(_cfg(tmp_path / "b", total_steps=300))
    ca = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")
    cb = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")
    for k, v in ca["algo"]["modules"]["critic"].items():
        assert torch.equal(v, cb["algo"]["modules"]["critic"][k])
    assert a.final_eval_return == b.final_eval_return


def test_evaluation_video_with_software_gl(tmp_path):
    """In a subprocess with MUJOCO_GL=osmesa (the GL backend is fixed at MuJoCo's import)."""
    from envs.gl import choose_gl_backend

    if choose_gl_backend({"MUJOCO_GL": "osmesa"}).problem is not None:
        pytest.skip("libOSMesa is not installed here (apt-get install libosmesa6)")
    import os
    import subprocess
    import sys

    code = (
        "from pathlib import Path; from robotac.config import TrainConfig; "
        "from robotac.train import _record_video; "
        "from policies.networks import DeterministicActor, RunningNorm; "
        "a = DeterministicActor(4, [-3.0], [3.0], (8,)); "
        f"_record_video(Path({str(tmp_path)!r}), a, RunningNorm(4), "
        "TrainConfig(env_id='InvertedPendulum-v5', video_frames=4))"
    )
    env = {**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    video = tmp_path / "videos" / "eval.mp4"
    if "no evaluation video" in proc.stdout:
        pytest.skip(f"no software GL here: {proc.stdout.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert video.is_file() and video.stat().st_size > 1000
    import imageio.v3 as iio

    frames = iio.imread(video)
    assert 1 <= frames.shape[0] <= 4 and frames.ndim == 4


def test_actor_bounds_joint_limits_uses_the_robot_interface(tmp_path):
    from envs.interface import QUADRUPED_INTERFACE

    train(_cfg(tmp_path / "q", env_id="robotac/Quadruped-v0", actor_bounds="joint_limits",
               total_steps=220, eval_episodes=1, eval_every=0))
    bundle = load_policy(tmp_path / "q")
    arr = QUADRUPED_INTERFACE.arrays()
    np.testing.assert_allclose(bundle.action_low, arr["joint_low_rad"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(bundle.action_high, arr["joint_high_rad"], rtol=0, atol=1e-6)
    assert bundle.interface == QUADRUPED_INTERFACE.to_dict()
    a = bundle.act(np.random.default_rng(0).normal(0, 100, (500, bundle.obs_dim)))
    assert (a >= bundle.action_low).all() and (a <= bundle.action_high).all()
    with pytest.raises(EnvError, match="needs a robot interface"):
        train(_cfg(tmp_path / "p", actor_bounds="joint_limits"))


def test_actor_bounds_default_pose_narrows_the_joint_limits(tmp_path):
    from robotac.env_utils import actor_bounds, make_env

    env = make_env("robotac/Quadruped-v0")
    arr = env.unwrapped.interface.arrays()
    space_low = env.action_space.low.astype(np.float32)
    space_high = env.action_space.high.astype(np.float32)
    low, high = actor_bounds(env, "robotac/Quadruped-v0", "default_pose", space_low, space_high,
                             radius=0.5)
    env.close()
    expect_low = np.maximum(arr["joint_low_rad"], arr["default_pose_rad"] - 0.5)
    expect_high = np.minimum(arr["joint_high_rad"], arr["default_pose_rad"] + 0.5)
    np.testing.assert_allclose(low, expect_low, atol=1e-6)
    np.testing.assert_allclose(high, expect_high, atol=1e-6)
    # Every range is at most 2 * radius wide and still holds the default pose.
    assert np.all(high - low <= 1.0 + 1e-6)
    assert np.all((low < arr["default_pose_rad"]) & (arr["default_pose_rad"] < high))
    with pytest.raises(ConfigError, match="actor_bound_radius"):
        validate(resolved(TrainConfig(env_id="Pendulum-v1", actor_bound_radius=-1.0)))


def test_obs_norm_skip_keeps_the_command_block_out_of_the_statistics(tmp_path):
    run = tmp_path / "q"
    train(_cfg(run, env_id="robotac/Quadruped-v0", total_steps=120, learning_starts=100,
               eval_every=0, checkpoint_every=120, obs_norm_skip=("command",),
               env_kwargs={"command_ranges": {"vx": (0.2, 0.6)}}))
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    mean, var = ckpt["obs_norm"]["mean"].numpy(), ckpt["obs_norm"]["var"].numpy()
    np.testing.assert_array_equal(mean[-3:], 0.0)  # the command block: the last 3 entries
    np.testing.assert_array_equal(var[-3:], 1.0)
    assert np.all(var[:-3] != 1.0) and json.loads((run / "config.json").read_text())[
        "obs_norm_skip"] == ["command"]


def test_obs_norm_skip_std_divides_the_command_block_by_fixed_spreads(tmp_path):
    """The skipped block keeps mean 0 and the given variance through training, and the run's
    policy (as load_policy rebuilds it) divides the command by those spreads."""
    run = tmp_path / "q"
    std = (0.26, 0.115, 0.58)
    train(_cfg(run, env_id="robotac/Quadruped-v0", total_steps=120, learning_starts=100,
               eval_every=0, checkpoint_every=120, obs_norm_skip=("command",),
               obs_norm_skip_std={"command": std}))
    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")
    mean, var = ckpt["obs_norm"]["mean"].numpy(), ckpt["obs_norm"]["var"].numpy()
    np.testing.assert_array_equal(mean[-3:], 0.0)
    np.testing.assert_allclose(var[-3:], np.square(std), rtol=1e-12)
    assert json.loads((run / "config.json").read_text())["obs_norm_skip_std"] == {
        "command": list(std)}
    bundle = load_policy(run, "latest")
    obs = torch.zeros(1, var.shape[0], dtype=torch.float32)
    obs[0, -3:] = torch.tensor([0.26, -0.115, 0.29])
    out = bundle.obs_norm(obs)[0, -3:].numpy()
    np.testing.assert_allclose(out, [1.0, -1.0, 0.5], rtol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"obs_norm_skip": ("command",), "obs_norm_skip_std": {"command": (0.3, 0.1)}},
     r"obs_norm_skip_std\['command'\] has 2 values; .* has 3 entries"),
    ({"obs_norm_skip": (), "obs_norm_skip_std": {"command": (0.3, 0.1, 0.5)}},
     r"obs_norm_skip_std=.*block 'command' is not in obs_norm_skip"),
    ({"obs_norm_skip": ("command",), "obs_norm_skip_std": {"command": (0.3, 0.0, 0.5)}},
     r"obs_norm_skip_std=.*finite values > 0"),
])
def test_obs_norm_skip_std_refuses_a_bad_value_before_anything_is_written(tmp_path, kwargs,
                                                                         match):
    with pytest.raises(ConfigError, match=match):
        train(_cfg(tmp_path / "r", env_id="robotac/Quadruped-v0", **kwargs))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("env_id,match", [
    ("robotac/Quadruped-v0", r"obs_norm_skip has unknown blocks \['cmd'\]; .*'command'"),
    ("Pendulum-v1", r"Pendulum-v1 publishes no observation layout"),
])
def test_obs_norm_skip_names_an_unknown_block_before_anything_is_written(tmp_path, env_id,
                                                                        match):
    with pytest.raises(ConfigError, match=match):
        train(_cfg(tmp_path / "r", env_id=env_id, obs_norm_skip=("cmd",)))
    assert not (tmp_path / "r").exists()


def test_on_eval_sees_each_periodic_evaluation_and_can_stop_the_run(tmp_path):
    seen = []

    def on_eval(step: int, mean_return: float) -> bool:
        seen.append((step, mean_return))
        return step >= 400

    result = train(_cfg(tmp_path / "run", total_steps=800), on_eval=on_eval)
    assert [s for s, _ in seen] == [200, 400]
    assert result.stopped_early and result.global_step == 400
    evals = (tmp_path / "run" / "eval.csv").read_text().splitlines()[1:]
    assert [float(line.split(",")[1]) for line in evals] == [r for _, r in seen]
    latest = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert latest["meta"]["global_step"] == 400  # resumable where it stopped


def test_symmetry_augmentation_updates_on_each_batch_and_its_mirror_image(tmp_path, monkeypatch):
    from robotac import algos

    seen = []
    original = algos.SAC.update

    def spy(self, batch):
        seen.append(batch)
        return original(self, batch)

    monkeypatch.setattr(algos.SAC, "update", spy)
    train(_cfg(tmp_path / "q", env_id="robotac/Quadruped-v0", total_steps=120,
               learning_starts=100, eval_every=0, checkpoint_every=120, batch_size=16,
               actor_bounds="default_pose", actor_bound_radius=0.3, normalize_obs=False,
               symmetry_augmentation=True))
    assert len(seen) >= 20
    from envs.interface import QUADRUPED_INTERFACE, mirror_maps

    m = mirror_maps(QUADRUPED_INTERFACE)
    b = seen[-1]  # raw observations (normalize_obs=False): the second half mirrors the first
    assert b.obs.shape == (32, 45) and b.action.shape == (32, 12)
    np.testing.assert_allclose(b.obs[16:].numpy(), m.obs(b.obs[:16].numpy()), atol=1e-6)
    np.testing.assert_allclose(b.next_obs[16:].numpy(), m.obs(b.next_obs[:16].numpy()),
                               atol=1e-6)
    np.testing.assert_allclose(b.action[16:].numpy(), m.action(b.action[:16].numpy()), atol=1e-5)
    torch.testing.assert_close(b.reward[16:], b.reward[:16])
    torch.testing.assert_close(b.terminated[16:], b.terminated[:16])
    assert json.loads((tmp_path / "q" / "config.json").read_text())["symmetry_augmentation"]


def test_symmetry_augmentation_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match=r"symmetry_augmentation=true: Pendulum-v1 publishes "
                                          r"no robot interface"):
        train(_cfg(tmp_path / "r", symmetry_augmentation=True))
    assert not (tmp_path / "r").exists()


def test_the_trainer_tells_the_algorithm_its_step_before_each_round_of_updates(tmp_path,
                                                                              monkeypatch):
    """The CAPS ramp (``caps_ramp_steps``) reads the global step the loop reports before its
    updates: off before the start, on after it, in the same run."""
    from robotac import algos

    scales = []
    original = algos.SAC.update

    def spy(self, batch):
        scales.append(self.caps_scale)
        return original(self, batch)

    monkeypatch.setattr(algos.SAC, "update", spy)
    train(_cfg(tmp_path / "c", total_steps=300, learning_starts=100, eval_every=0,
               checkpoint_every=300, caps_temporal_weight=0.5, caps_ramp_steps=(200, 250)))
    assert len(scales) == 201  # one update per env step from learning_starts (100..300)
    assert scales[:101] == [0.0] * 101  # steps 100..200: up to the ramp's start
    assert scales[125] == pytest.approx(0.5)  # step 225
    assert scales[-1] == 1.0
    assert scales == sorted(scales)
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert saved["caps_ramp_steps"] == [200, 250]
