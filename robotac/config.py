"""Training configuration: one typed dataclass, one docstring per field (tyro turns it into --help).

Defaults follow the papers and CleanRL (``sac_continuous_action.py``, ``td3_continuous_action.py``,
``ddpg_continuous_action.py``): Adam with learning rate 3e-4, batch 256, two hidden layers of
256 units, ``gamma = 0.99``, Polyak ``tau = 0.005``, 5000 random warm-up steps, one gradient update
per env step. The per-algorithm fields (``policy_delay``, ``target_policy_noise``, ...) are ignored
by the algorithms that do not use them, except ``ou_noise``, which only DDPG accepts (a switch
that would silently do nothing is refused). A field left at ``None`` takes the algorithm's own
default from :mod:`robotac.registry` (:func:`resolved`): CrossQ's learning rates, critic widths,
Adam betas and policy delay differ from SAC's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from robotac import registry
from robotac.registry import AlgoName

__all__ = ["TrainConfig", "ConfigError", "ALGOS", "validate", "resolved", "load_config_file"]

#: The algorithm names (:data:`robotac.registry.ALGO_NAMES`).
ALGOS = registry.ALGO_NAMES


class ConfigError(ValueError):
    """A configuration value is missing, out of range or inconsistent."""


@dataclass
class TrainConfig:
    """Train an off-policy actor-critic (SAC, TD3, DDPG, CrossQ: :mod:`robotac.registry`) on a
    Gymnasium env with a bounded Box action space."""

    env_id: Annotated[str | None, tyro.conf.arg(aliases=("--env",))] = None
    """Env id, e.g. ``Pendulum-v1`` or ``robotac/Quadruped-v0`` (required unless --resume)."""
    algo: AlgoName | None = None
    """Algorithm (default ``sac``); the choices are :data:`robotac.registry.ALGORITHMS`."""
    env_kwargs: dict[str, bool | int | float | str | tuple[float, ...]] = field(
        default_factory=dict
    )
    """Keyword arguments of the env constructor: ``KEY VALUE`` pairs of scalars on the command
    line; vectors (e.g. ``fixed_command: [0.5, 0, 0]``) in a --config file."""
    robot: str | None = None
    """The robot of ``robotac/Quadruped-v0``: a shipped description's name (``quadruped``,
    ``quadruped_xl``) or a description folder (``docs/your_robot.md``); it becomes the env
    keyword ``robot``, so one recipe trains any description unchanged (``--robot NAME``).
    Default: ``env_kwargs``'s ``robot``, else the env's default robot."""
    seed: int = 1
    """Seed of torch, numpy, python ``random`` and of every env reset."""
    total_steps: int = 1_000_000
    """Total env steps (summed over the parallel envs)."""
    num_envs: int = 1
    """Number of parallel training envs (Gymnasium vector env, same-step autoreset)."""
    vector_mode: Literal["sync", "async"] = "sync"
    """``sync``: envs step in this process; ``async``: one subprocess per env."""
    learning_starts: int = 5000
    """Env steps of uniformly random actions before the first gradient update."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity in transitions."""
    batch_size: int = 256
    """Transitions per gradient update."""
    gamma: float = 0.99
    """Discount factor, in ``[0, 1)``."""
    tau: float = 0.005
    """Polyak coefficient of the target networks, ``target <- (1 - tau) target + tau online``."""
    utd_ratio: float = 1.0
    """Update-to-data ratio: gradient updates per env step collected (after learning starts)."""
    actor_lr: float | None = None
    """Adam learning rate of the actor (default: the algorithm's, 3e-4; CrossQ 1e-3)."""
    critic_lr: float | None = None
    """Adam learning rate of the critics (default: the algorithm's, 3e-4; CrossQ 1e-3)."""
    adam_betas: tuple[float, float] | None = None
    """Adam ``(beta1, beta2)`` of actor and critics (default: the algorithm's, ``(0.9, 0.999)``;
    CrossQ ``(0.5, 0.999)``, Bhatt et al. 2024)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor, and of the critics unless ``critic_hidden`` is set."""
    critic_hidden: tuple[int, ...] | None = None
    """Hidden layer widths of the critics (default: the algorithm's; ``hidden`` for SAC, TD3 and
    DDPG, ``(2048, 2048)`` for CrossQ, the paper's wider critics)."""
    critic_layer_norm: bool = False
    """Layer normalisation before each hidden ReLU of the critics (RLPD, DroQ): bounded Q
    estimates, stable at high update-to-data ratios and small ``gamma``."""
    actor_bounds: Literal["action_space", "joint_limits", "default_pose"] = "action_space"
    """Bounds the actor squashes into: the env's action space; the robot's joint limits
    (``env.unwrapped.interface``), a per-dimension subset of it that the robot accepts whole, so
    no action is ever clamped by the env, the robot or the deploy safety layer; or
    ``default_pose``: the joint limits narrowed to ``default pose +- actor_bound_radius``."""
    actor_bound_radius: float = 0.6
    """With ``actor_bounds=default_pose``: half-width of the actor's range around the default
    pose, in action units (rad for the quadruped's servos)."""
    normalize_obs: bool = True
    """Normalize observations with running statistics (updated on every collected obs)."""
    obs_clip: float = 10.0
    """Normalized observations are clipped to ``[-obs_clip, obs_clip]``."""
    obs_norm_skip: tuple[str, ...] = ()
    """Observation blocks (names in the env's ``interface.obs_layout``, e.g. ``command``) left
    out of the running normalization: they pass through unscaled. For a block whose distribution
    a curriculum changes during training (running statistics of a command held at 0 would
    later map every other value to the clip)."""
    obs_norm_skip_std: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Fixed standard deviations of ``obs_norm_skip`` blocks, one per entry of the block (e.g.
    ``command: [0.26, 0.115, 0.58]``, the spread of uniform commands over the env's ranges):
    the block is divided by them instead of passing unscaled. Blocks not named here keep 1."""
    symmetry_augmentation: bool = False
    """Train on every sampled batch and its left-right mirror image (``2 * batch_size``
    transitions per update): the robot and its task are symmetric, so each transition's mirror
    image is one too (Abdolhosseini et al. 2019, DUP; Mittal et al. 2024). Needs an env whose
    ``interface`` can be mirrored (:func:`envs.interface.mirror_maps`: the quadruped)."""
    policy_delay: int | None = None
    """Critic updates per actor update (default: the algorithm's; TD3 2, CrossQ 3, SAC and DDPG
    1)."""
    # CAPS: smoothness regularization of the actor (every algorithm)
    caps_temporal_weight: float = 0.0
    """CAPS temporal weight ``lambda_T`` (Mysore, Mabsout, Mancuso & Saenko, "Regularizing Action
    Policies for Smooth Control with Reinforcement Learning", ICRA 2021, sec. IV): the actor loss
    gains ``lambda_T * mean ||pi(s_t) - pi(s_{t+1})||_2`` over the batch's transitions, ``pi``
    the deterministic action (SAC, CrossQ: ``tanh`` of the Gaussian's mean) in the squashed
    ``[-1, 1]`` units. 0 (default): off, the update is unchanged."""
    caps_spatial_weight: float = 0.0
    """CAPS spatial weight ``lambda_S`` (same paper): the actor loss gains ``lambda_S * mean
    ||pi(s) - pi(s~)||_2`` with ``s~ ~ N(s, caps_sigma^2 I)``. 0 (default): off."""
    caps_sigma: float = 0.05
    """CAPS: std of the spatial perturbation ``s~ - s``, in the actor's input space, i.e. of the
    *normalized* observation (units of each entry's running std, or of its ``obs_norm_skip_std``;
    raw units for blocks skipped without one, and everywhere with ``normalize_obs`` false)."""
    caps_ramp_steps: tuple[int, int] | None = None
    """CAPS weights on a schedule ``(start, full)`` in global env steps: scaled by 0 before
    ``start`` (the actor loss as without CAPS, nothing computed), linearly up to 1 at ``full``,
    1 after; ``None`` (default): full weight from the first update. A smoothness term from step
    0 can keep the policy from finding a gait at all; this brings it in once the gait has formed
    (Hwangbo et al., Science Robotics 2019, scale their cost terms up during training with a
    curriculum factor ``k_c``). The scale depends on the step only, so a resume continues it."""
    # SAC
    autotune_alpha: bool = True
    """SAC, CrossQ: learn the entropy temperature alpha towards ``target_entropy``."""
    alpha: float = 1.0
    """SAC, CrossQ: initial (or, without autotune, fixed) entropy temperature."""
    alpha_lr: float | None = None
    """SAC, CrossQ: Adam learning rate of ``log(alpha)`` (default: the algorithm's, 3e-4; CrossQ
    1e-3)."""
    target_entropy_scale: float = 1.0
    """SAC, CrossQ: target entropy is ``-target_entropy_scale * action_dim`` nats, of the action
    in the squashed ``[-1, 1]`` units (independent of the bounds' widths)."""
    action_noise_beta: float = 0.0
    """Color of the exploration noise over time, the exponent of its power spectrum
    ``1/f^beta`` (Eberhard et al., ICLR 2023): 0 white (i.i.d., the default), 1 pink, 2 red.
    SAC: the reparameterization noise of the behaviour policy; TD3/DDPG: the Gaussian action
    noise. Temporally correlated noise explores with sustained joint motions instead of jitter."""
    action_noise_seq_len: int = 1000
    """Length [env steps] of each env's colored-noise sequence (the paper: the episode length);
    the lowest frequency it holds. Used only with ``action_noise_beta > 0``."""
    # TD3 / DDPG
    exploration_noise: float = 0.1
    """TD3/DDPG: std of the Gaussian exploration noise added to the squashed action, in units of
    each dimension's half-range (0.1 = TD3 paper's 0.1 * max_action); the sum is clipped to the
    bounds."""
    ou_noise: bool = False
    """DDPG only (refused with TD3 and SAC): Ornstein-Uhlenbeck exploration noise (theta
    ``ou_theta``, sigma ``exploration_noise``), added to the squashed action like the Gaussian
    noise."""
    ou_theta: float = 0.15
    """DDPG: mean-reversion rate of the Ornstein-Uhlenbeck process (per env step)."""
    target_policy_noise: float = 0.2
    """TD3: std of the target-policy smoothing noise, in units of each dimension's half-range."""
    target_noise_clip: float = 0.5
    """TD3: the smoothing noise is clipped to +-this, in units of each dimension's half-range."""
    # CrossQ
    batch_renorm_momentum: float = 0.01
    """CrossQ: rate of the critic's Batch Renormalization running statistics,
    ``running <- running + momentum * (batch - running)`` (sb3-contrib 0.01, the paper's 0.99
    decay)."""
    batch_renorm_warmup: int = 100_000
    """CrossQ: critic updates during which Batch Renormalization normalizes with the batch
    statistics alone (plain batch norm, ``r = 1, d = 0``) before ``r_max = 3, d_max = 5`` apply
    (sb3-contrib's 100k; Ioffe 2017 sec. 4 warms up too)."""
    # runtime
    device: str = "cpu"
    """Torch device: ``cpu``, ``cuda`` or ``cuda:N``. Changes the trajectory, so a resume keeps
    the run's device."""
    num_threads: int = 1
    """torch intra-op threads (1 is fastest for 256x256 MLPs on small CPUs; see docs)."""
    fused_adam: bool = True
    """Use ``torch.optim.Adam(fused=True)`` (one kernel per optimizer; measured about 5-10%
    faster per SAC update on CPU, docs/benchmarks.md)."""
    collector: Literal["inline", "process"] = "inline"
    """Where the training envs step. ``inline``: in this process, between updates (one core).
    ``process``: in a worker process that collects the next ``collector_chunk`` steps while
    this process runs the updates (two cores, a fixed lock-step schedule, so the run does not
    depend on timing and resumes bitwise); the behaviour actor then lags the learner by
    ``collector_chunk + 1`` to ``2 * collector_chunk`` env steps (:mod:`robotac.collector`).
    Changes the trajectory, so a resume keeps the run's setting."""
    collector_chunk: int = 1
    """With ``collector=process``: env steps per env collected per round (the weights are sent
    to the worker once per round)."""
    compile: bool = False
    """``torch.compile`` the update (pays only for long runs; see docs/benchmarks.md). Changes
    the trajectory (inductor's random numbers differ), so a resume keeps the run's setting."""
    # outputs
    run_dir: str | None = None
    """Run directory (default ``runs/<env>__<algo>__<seed>__<time>``); never overwritten."""
    resume: str | None = None
    """Resume the run in this directory from ``checkpoints/latest.pt``."""
    eval_every: int = 10_000
    """Evaluate the deterministic actor every this many env steps (0: only at the end)."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    checkpoint_every: int = 10_000
    """Write ``checkpoints/latest.pt`` every this many env steps (and at the end)."""
    keep_every: int = 0
    """Also keep the policy (actor + normalizer, like ``best.pt``) every this many env steps as
    ``checkpoints/step_N.pt`` (0: keep none). A task metric can then choose among them
    afterwards (``scripts/eval_gait.py --grid --which step_N``): a gait's grid can swing between
    checkpoints that the evaluation return ranks alike."""
    save_buffer: bool = True
    """Include the replay buffer in ``latest.pt`` (needed for an exact resume)."""
    log_every: int = 1000
    """Write scalars to TensorBoard every this many env steps (one device sync each)."""
    progress: bool = True
    """Show a console progress bar."""
    video: bool = True
    """Record an evaluation video at the end (needs a GL backend, e.g. MUJOCO_GL=osmesa)."""
    video_frames: int = 200
    """At most this many video frames: a longer episode is rendered every k-th step (played back
    at real time); software GL (OSMesa) renders only a few frames per second."""
    export: bool = True
    """Export the best actor to ONNX at the end (``robotac.export``)."""
    stop_after_steps: int | None = None
    """Stop this session after this many env steps as if killed (no final eval); for time-sliced
    jobs and resume tests."""


# Fields that may differ between a run and its resumption (they do not change the trajectory).
# Not among them: ``compile`` (inductor draws its random numbers differently from eager torch;
# issue 12's review measured a critic loss of 4.4472 compiled and 4.2814 eager from the same seed)
# and ``device`` (CPU and CUDA kernels and RNG streams differ). A resume inherits both from the
# run and refuses a change (robotac.train). ``num_threads`` stays: 5 SAC updates at 1 and at 2
# threads gave bitwise equal critics on the 2-core development VM (2026-11-30).
SESSION_FIELDS = frozenset(
    {
        "total_steps",
        "num_threads",
        "progress",
        "video",
        "video_frames",
        "export",
        "stop_after_steps",
        "resume",
        "run_dir",
        "log_every",
        "keep_every",
    }
)
#: Why a setting outside SESSION_FIELDS that one might expect to be session-only is not.
TRAJECTORY_NOTES = {
    "compile": "torch.compile (inductor) draws random numbers differently from eager torch",
    "device": "CPU and CUDA kernels and random number streams differ",
}


def resolved(cfg: TrainConfig) -> TrainConfig:
    """Fill the algorithm-dependent defaults and return a copy.

    ``algo`` defaults to :data:`robotac.registry.DEFAULT_ALGO`; every field of
    :data:`robotac.registry.COMMON_DEFAULTS` left at ``None`` (``policy_delay``, the learning
    rates, ``critic_hidden``, ``adam_betas``) takes the algorithm's value from its
    :class:`~robotac.registry.AlgoSpec`, ``critic_hidden`` falling back to ``hidden``. The
    trainers resolve their config the same way, so one built from an unresolved config runs with
    the same values. An unknown ``algo`` is left for :func:`validate` to refuse (its fields stay
    ``None``).
    """
    algo = cfg.algo or registry.DEFAULT_ALGO
    fills: dict[str, Any] = {}
    if algo in registry.ALGORITHMS:
        spec = registry.ALGORITHMS[algo]
        fills = {k: spec.default(k) for k in registry.COMMON_DEFAULTS if getattr(cfg, k) is None}
    critic_hidden = fills.pop("critic_hidden", cfg.critic_hidden)
    if critic_hidden is None and algo in registry.ALGORITHMS:
        critic_hidden = cfg.hidden
    betas = fills.pop("adam_betas", cfg.adam_betas)
    env_kwargs = dict(cfg.env_kwargs)
    if cfg.robot is not None:  # validate refuses an env_kwargs robot that says otherwise
        env_kwargs.setdefault("robot", cfg.robot)
    return dataclasses.replace(cfg, algo=algo, **fills, hidden=tuple(cfg.hidden),
                               env_kwargs=env_kwargs,
                               critic_hidden=None if critic_hidden is None else tuple(
                                   int(h) for h in critic_hidden),
                               adam_betas=None if betas is None else tuple(
                                   float(b) for b in betas),
                               obs_norm_skip=tuple(cfg.obs_norm_skip),
                               obs_norm_skip_std={k: tuple(float(x) for x in v)
                                                  for k, v in cfg.obs_norm_skip_std.items()})


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def validate(cfg: TrainConfig) -> None:
    """Check every value's range and the consistency between values.

    Raises:
        ConfigError: naming the field, its value and the accepted range.
    """

    def bad(name: str, rule: str) -> ConfigError:
        return ConfigError(f"config field {name}={getattr(cfg, name)!r} is invalid: {rule}")

    if not cfg.env_id:
        raise ConfigError("no environment given: pass --env ID (e.g. --env Pendulum-v1)")
    unresolved = [k for k in registry.COMMON_DEFAULTS
                  if k != "critic_hidden" and getattr(cfg, k) is None]
    if cfg.algo in registry.ALGORITHMS and unresolved:
        raise ConfigError(f"config fields {unresolved} are unset: validate a resolved(cfg)")
    if cfg.algo not in registry.ALGORITHMS:
        raise bad("algo", f"choose one of {list(registry.ALGO_NAMES)}")
    if cfg.robot is not None and cfg.env_kwargs.get("robot", cfg.robot) != cfg.robot:
        raise bad("robot", f"env_kwargs names another robot, {cfg.env_kwargs['robot']!r}: give "
                  "one of them")
    spec = registry.ALGORITHMS[cfg.algo]
    positive_ints = ("total_steps", "num_envs", "buffer_size", "batch_size", "eval_episodes",
                     "num_threads", "log_every", "checkpoint_every", "video_frames")
    for name in positive_ints:
        if int(getattr(cfg, name)) < 1:
            raise bad(name, "must be an integer >= 1")
    for name in ("learning_starts", "eval_every", "keep_every"):
        if getattr(cfg, name) < 0:
            raise bad(name, "must be >= 0")
    if not 0.0 <= cfg.gamma < 1.0:
        raise bad("gamma", "must be in [0, 1)")
    if not 0.0 < cfg.tau <= 1.0:
        raise bad("tau", "must be in (0, 1]")
    for name in ("actor_lr", "critic_lr", "alpha_lr", "alpha", "utd_ratio", "obs_clip",
                 "actor_bound_radius"):
        v = getattr(cfg, name)
        if not (math.isfinite(v) and v > 0):
            raise bad(name, "must be a finite number > 0")
    for name in ("exploration_noise", "target_policy_noise", "target_noise_clip",
                 "target_entropy_scale"):
        v = getattr(cfg, name)
        if not (math.isfinite(v) and v >= 0):
            raise bad(name, "must be a finite number >= 0")
    if not (math.isfinite(cfg.action_noise_beta) and cfg.action_noise_beta >= 0):
        raise bad("action_noise_beta", "must be a finite number >= 0 (0 white, 1 pink, 2 red)")
    if cfg.action_noise_seq_len < 2:
        raise bad("action_noise_seq_len", "must be an integer >= 2 (env steps)")
    if cfg.action_noise_beta > 0 and cfg.ou_noise:
        raise bad("action_noise_beta", "colored noise replaces the Gaussian noise; "
                  "Ornstein-Uhlenbeck noise (ou_noise) is colored already: use one of the two")
    if not 0.0 < cfg.ou_theta <= 1.0:
        raise bad("ou_theta", "must be in (0, 1]")
    if cfg.policy_delay is not None and cfg.policy_delay < 1:
        raise bad("policy_delay", "must be >= 1")
    for name in spec.refused:
        if getattr(cfg, name):
            raise bad(name, f"{spec.title} would ignore it: {spec.refusal(name, cli=True)}")
    if not cfg.hidden or any(h < 1 for h in cfg.hidden):
        raise bad("hidden", "needs at least one layer, every width >= 1")
    if cfg.critic_hidden is not None and (not cfg.critic_hidden
                                          or any(h < 1 for h in cfg.critic_hidden)):
        raise bad("critic_hidden", "needs at least one layer, every width >= 1")
    if cfg.adam_betas is not None and (len(cfg.adam_betas) != 2
                                       or not all(0.0 <= b < 1.0 for b in cfg.adam_betas)):
        raise bad("adam_betas", "needs two values in [0, 1), e.g. 0.9 0.999")
    if not 0.0 < cfg.batch_renorm_momentum <= 1.0:
        raise bad("batch_renorm_momentum", "must be in (0, 1]")
    if cfg.batch_renorm_warmup < 0:
        raise bad("batch_renorm_warmup", "must be an integer >= 0 (critic updates)")
    for block, std in cfg.obs_norm_skip_std.items():
        if block not in cfg.obs_norm_skip:
            raise bad("obs_norm_skip_std", f"block {block!r} is not in obs_norm_skip "
                      f"{list(cfg.obs_norm_skip)}; only skipped blocks take a fixed scale")
        if not all(math.isfinite(float(x)) and float(x) > 0 for x in std):
            raise bad("obs_norm_skip_std", f"block {block!r} needs finite values > 0")
    if cfg.batch_size > cfg.buffer_size:
        raise ConfigError(
            f"batch_size={cfg.batch_size} is larger than buffer_size={cfg.buffer_size}: "
            "lower --batch-size or raise --buffer-size"
        )
    if cfg.learning_starts < cfg.batch_size:
        raise ConfigError(
            f"learning_starts={cfg.learning_starts} is smaller than batch_size={cfg.batch_size}: "
            "the first update would sample a batch from fewer transitions; raise "
            "--learning-starts"
        )
    for name in ("caps_temporal_weight", "caps_spatial_weight"):
        v = getattr(cfg, name)
        if not (math.isfinite(v) and v >= 0):
            raise bad(name, "must be a finite number >= 0 (0 switches the CAPS term off)")
    if not (math.isfinite(cfg.caps_sigma) and cfg.caps_sigma >= 0):
        raise bad("caps_sigma", "must be a finite number >= 0 (std in normalized observation "
                  "units)")
    if cfg.caps_ramp_steps is not None:
        r = cfg.caps_ramp_steps
        if (not isinstance(r, (list, tuple)) or len(r) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) for v in r)
                or not 0 <= r[0] < r[1]):
            raise bad("caps_ramp_steps", "must be two integers 0 <= start < full (global env "
                      "steps where the CAPS weights start and where they reach their value), "
                      "or None for full weight from the start")
        if not (cfg.caps_temporal_weight > 0 or cfg.caps_spatial_weight > 0):
            raise bad("caps_ramp_steps", "is set but both CAPS weights are 0: set "
                      "caps_temporal_weight / caps_spatial_weight, or drop the ramp")
    if cfg.caps_spatial_weight > 0 and cfg.caps_sigma == 0:
        raise bad("caps_sigma", "is 0 with caps_spatial_weight > 0: s~ = s makes the spatial "
                  "term 0; set caps_sigma > 0 (e.g. 0.05) or caps_spatial_weight 0")
    cores = usable_cores()
    if cfg.num_threads > cores:
        raise bad("num_threads", f"this machine gives the process {cores} CPU core(s); more "
                  "intra-op threads than cores only contend: lower --num-threads")
    if cfg.collector_chunk < 1:
        raise bad("collector_chunk", "must be an integer >= 1 (env steps per env per round)")
    if cfg.collector == "process" and cfg.vector_mode != "sync":
        raise bad("vector_mode", "collector=process steps the envs in its worker process "
                  "already; use vector_mode=sync with it")
    if cfg.collector not in ("inline", "process"):
        raise bad("collector", "choose inline or process")
    if cfg.stop_after_steps is not None and cfg.stop_after_steps < 1:
        raise bad("stop_after_steps", "must be >= 1")
    if not (cfg.device == "cpu" or cfg.device.startswith("cuda")):
        raise bad("device", "use cpu, cuda or cuda:N")


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """JSON-ready dict of the config (tuples become lists)."""
    d = dataclasses.asdict(cfg)
    d["hidden"] = list(cfg.hidden)
    for name in ("critic_hidden", "adam_betas"):
        d[name] = None if d[name] is None else list(d[name])
    d["obs_norm_skip"] = list(cfg.obs_norm_skip)
    d["obs_norm_skip_std"] = {k: list(v) for k, v in cfg.obs_norm_skip_std.items()}
    return d


def from_dict(d: dict[str, Any]) -> TrainConfig:
    """Build a config from a dict (as read from ``config.json`` or a recipe file).

    Raises:
        ConfigError: on unknown keys, naming them and the known ones.
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    aliases = {"env": "env_id"}
    d = {aliases.get(k, k).replace("-", "_"): v for k, v in d.items()}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
    if "hidden" in d:
        d["hidden"] = tuple(int(h) for h in d["hidden"])
    if d.get("critic_hidden") is not None:
        d["critic_hidden"] = tuple(int(h) for h in d["critic_hidden"])
    if d.get("adam_betas") is not None:
        d["adam_betas"] = tuple(float(b) for b in d["adam_betas"])
    if isinstance(d.get("caps_ramp_steps"), list):  # JSON/YAML lists; validate() checks them
        d["caps_ramp_steps"] = tuple(d["caps_ramp_steps"])
    if "obs_norm_skip" in d:
        skip = d["obs_norm_skip"]
        d["obs_norm_skip"] = (skip,) if isinstance(skip, str) else tuple(str(b) for b in skip)
    if "obs_norm_skip_std" in d:
        if not isinstance(d["obs_norm_skip_std"], dict):
            raise ConfigError(
                f"obs_norm_skip_std must be a mapping block -> list of stds, got "
                f"{d['obs_norm_skip_std']!r}"
            )
        d["obs_norm_skip_std"] = {
            str(k): tuple(float(x) for x in (v if isinstance(v, list | tuple) else [v]))
            for k, v in d["obs_norm_skip_std"].items()
        }
    if "env_kwargs" in d:
        if not isinstance(d["env_kwargs"], dict):
            raise ConfigError(f"env_kwargs must be a mapping, got {d['env_kwargs']!r}")
        d["env_kwargs"] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in d["env_kwargs"].items()
        }
    return TrainConfig(**d)


def load_config_file(path: str | Path) -> TrainConfig:
    """Read a recipe file (``.yaml``/``.yml`` or ``.json``) into a :class:`TrainConfig`.

    Raises:
        ConfigError: if the file is missing, unreadable, not a mapping, or has unknown keys.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is reported with the file name
        raise ConfigError(f"config file {path} could not be parsed: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of field: value")
    return from_dict(data)
