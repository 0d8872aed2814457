"""Fixed-rate control loop: phases, deadlines, per-step log and timing summary.

:func:`run_deploy` drives a robot through the phases of DESIGN.md contract 7:

    CONNECT (HELLO -> INFO, the policy checked against the robot, the pose read: ``_Steps.start``)
    -> RAMP from the measured pose to the default pose (``ramp_s``, ``_Steps.ramp``) -> HOLD it
    (``hold_s``, ``_Steps.hold``) -> RUN the policy (``duration_s``, ``_Steps.run``; each step's
    target goes out through ``_Steps.exchange``) -> STOP, always in ``finally:`` (:func:`_stop`):
    where the bus still works the body is lowered to the measured pose over ``lower_s`` first,
    then passive, or ESTOP after a fault or an exception. A stop signal (SIGINT, SIGTERM, SIGHUP,
    SIGQUIT) only requests the stop (:class:`StopSignals`).

The robot is reached through a :class:`~deploy.robot_link.RobotLink` (protocol v1 over a serial
port, a Feetech STS servo bus, or the in-process virtual robot); the loop sees its typed
replies (joint positions and velocities, IMU readings, status bits, a refusal, a link fault),
never bytes. A :class:`~deploy.robot_link.LinkFault` stops the run at once with its reason.

Each control step, at its deadline: read the robot's state (READ -> STATE, ``fresh_state``; see
:class:`LoopConfig`), build the observation from it with
``envs.interface.quadruped_obs`` (the function the simulator uses, contract 2) plus the previous
action (as the env feeds it back: the policy's action clipped to its bounds, the default pose
before the first one) and the velocity command, run the policy, shape the action as the env
does (``envs.interface.ActionFilter`` with the settings of the policy metadata's ``env_kwargs``,
contract 8; its state is the previous filtered target, the held target at the start of the run
phase), pass it through the :class:`~deploy.safety.SafetyLayer`, send it as one COMMAND and
receive the STATE. The velocity command comes from a :class:`~deploy.commands.CommandSource`
(fixed, keyboard, gamepad, schedule), polled once per period, through a
:class:`~deploy.commands.CommandShaper` (clipped to the trained ranges, rate limited; a fixed
command from its own value at the first step, as in the env).

Timing: steps are scheduled against absolute deadlines ``t0 + k * period``
(:class:`DeadlineClock`: sleep until shortly before the deadline, then spin), never
``sleep(period)`` after the work, so the loop does not drift. A step whose work runs past the
next deadline is counted as a deadline miss and the schedule skips ahead instead of bursting.
The garbage collector is off during the run (no collection pauses); ``rt_priority`` optionally
runs the loop under ``SCHED_FIFO``.

Every step is logged (time, phase, observation, raw action, target sent, STATE received, timings)
to an ``.npz`` file for comparing real and simulated runs; :func:`summarize` gives achieved rate,
period p50/p99/max and jitter, inference and round-trip percentiles, drops and errors.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deploy import protocol as P
from deploy.commands import (
    DEFAULT_COMMAND_MAX_RATE,
    CommandShaper,
    CommandSource,
    FixedCommand,
    check_source_for_policy,
    policy_command_ranges,
)
from deploy.link import LinkError, SerialLink
from deploy.policy import PolicyMismatchError, joint_limits
from deploy.robot_link import LinkFault, RobotLink, as_robot_link, hello
from deploy.safety import (
    LOWER_FAULTS,
    Fault,
    SafetyConfig,
    SafetyFault,
    SafetyLayer,
    SafetyViolation,
)
from envs.interface import (
    QUADRUPED_INTERFACE,
    ActionFilter,
    RobotInterface,
    gait_phase,
    has_gait_clock,
    quadruped_obs,
    with_gait_clock,
)

__all__ = [
    "Phase",
    "LoopConfig",
    "DeployResult",
    "DeadlineClock",
    "run_deploy",
    "summarize",
    "hello",
]


class Phase(enum.IntEnum):
    """Phase of a logged step."""

    RAMP = 0
    HOLD = 1
    RUN = 2


@dataclass
class LoopConfig:
    """Settings of a deploy run.

    Attributes:
        rate_hz: Control rate [Hz]; the policy was trained at ``1 / interface.control_period_s``.
        duration_s: Length of the run phase [s] (after ramp and hold).
        command: Velocity command ``(vx [m/s], vy [m/s], yaw rate [rad/s])`` fed to the policy
            when :func:`run_deploy` gets no command source.
        command_max_rate: Largest change of the command per second ``(vx [m/s^2], vy [m/s^2],
            yaw rate [rad/s^2])`` (:class:`~deploy.commands.CommandShaper`); ``inf`` disables.
        safety: :class:`SafetyConfig` (rate limit, tilt limit, ramp and hold times).
        reply_timeout_s: Time to wait for each reply [s]; default 60 % of the period.
        spin_s: The last part of each wait is a busy spin of this length [s] (sleep overshoot).
        log_path: ``.npz`` file for the per-step log; ``None`` keeps it in memory only.
        hello_attempts: HELLO tries (each with a 0.2 s timeout) before giving up.
        rt_priority: When > 0, run the loop under ``SCHED_FIFO`` with this priority (1-99;
            Linux, needs root or ``CAP_SYS_NICE``); the previous policy is restored afterwards.
        fresh_state: In the run phase, read the robot's state (READ -> STATE) at each deadline
            and build the observation from it. The env's observation is the state at the
            moment its action starts to act (contract 2); the STATE that answers a COMMAND was
            sampled when that COMMAND arrived, a whole period before the next one, and a policy
            fed it acts on a period-old state: the env's ``action_latency_steps=1``, which
            changed the shipped gait's velocities by up to 14 % in real-time sim-to-sim (a
            sideways drift of 0.05 m/s). Costs one more exchange per period on protocol v1 (a
            12-joint READ and its STATE take about 1.6 ms at 1 Mbaud); the STS link answers the
            COMMAND with this READ's state, so there it costs no extra sync read. When the
            READ gets no STATE in half the reply timeout, the step uses the last STATE (counted
            in the summary's ``stale_observations``); a link fault stops the run.
    """

    rate_hz: float = 50.0
    duration_s: float = 10.0
    command: tuple[float, float, float] = (0.0, 0.0, 0.0)
    command_max_rate: tuple[float, float, float] = DEFAULT_COMMAND_MAX_RATE
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    reply_timeout_s: float | None = None
    spin_s: float = 0.001
    log_path: Path | None = None
    hello_attempts: int = 3
    rt_priority: int = 0
    fresh_state: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.rate_hz <= 1000:
            raise ValueError(f"rate_hz must be in (0, 1000], got {self.rate_hz}")
        if self.duration_s < 0:
            raise ValueError(f"duration_s must be >= 0, got {self.duration_s}")
        if len(self.command) != 3:
            raise ValueError(f"command must be (vx, vy, yaw_rate), got {self.command}")
        if len(self.command_max_rate) != 3 or not all(r > 0 for r in self.command_max_rate):
            raise ValueError(f"command_max_rate must be three rates > 0, got "
                             f"{self.command_max_rate}")
        if self.reply_timeout_s is not None and not self.reply_timeout_s > 0:
            raise ValueError(
                f"reply_timeout_s must be > 0 [s] (or None for 60 % of the period), got "
                f"{self.reply_timeout_s}"
            )
        if not self.spin_s >= 0:
            raise ValueError(f"spin_s must be >= 0 [s], got {self.spin_s}")
        if self.hello_attempts < 1:
            raise ValueError(f"hello_attempts must be >= 1, got {self.hello_attempts}")

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def timeout_s(self) -> float:
        """Time to wait for each reply [s]: ``reply_timeout_s``, or 60 % of the period."""
        return self.reply_timeout_s or max(0.6 * self.period_s, 0.002)


@dataclass
class DeployResult:
    """Outcome of :func:`run_deploy`.

    Attributes:
        summary: Timing and counter summary (see :func:`summarize`).
        log: Per-step arrays (see :func:`run_deploy`).
        fault: The fault that stopped the run, or ``None``.
        stop_reason: One line: why the run ended.
        stopped_with: ``"passive"``, ``"estop"``, or ``"none (link lost)"``.
        info: The robot's INFO, when it answered HELLO.
        log_path: Where the log was written, if anywhere.
    """

    summary: dict[str, Any]
    log: dict[str, np.ndarray]
    fault: Fault | None
    stop_reason: str
    stopped_with: str
    info: P.Info | None
    log_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.fault is None


class DeadlineClock:
    """Wake at absolute deadlines ``t0 + k * period`` (``time.perf_counter``).

    ``wait()`` sleeps until ``spin_s`` before the next deadline, then spins. If the deadline has
    already passed when ``wait()`` is called, the step is counted in :attr:`misses`; when more
    than a whole period late, the schedule is re-anchored to now (no burst of catch-up steps).

    Args:
        period_s: Period [s].
        spin_s: Busy-wait window before each deadline [s].
    """

    def __init__(self, period_s: float, spin_s: float = 0.001):
        self.period_s = float(period_s)
        self.spin_s = float(spin_s)
        self.misses = 0
        self.skipped = 0
        self._t0 = 0.0
        self._k = 0

    def start(self) -> float:
        """Anchor the schedule at now; the first ``wait()`` returns at once. Returns ``t0``."""
        self._t0 = time.perf_counter()
        self._k = -1
        return self._t0

    @property
    def tick(self) -> int:
        """Index ``k`` of the deadline the last ``wait()`` returned for (skipped periods
        included): the time since ``start()`` in periods."""
        return self._k

    def wait(self) -> float:
        """Block until the next deadline; return how late the call already was [s] (0: on time)."""
        self._k += 1
        deadline = self._t0 + self._k * self.period_s
        now = time.perf_counter()
        if now > deadline and self._k > 0:
            self.misses += 1
            late = now - deadline
            if late > self.period_s:
                skip = int(late // self.period_s)
                self.skipped += skip
                self._k += skip
            return late
        remaining = deadline - now - self.spin_s
        if remaining > 0:
            time.sleep(remaining)
        while time.perf_counter() < deadline:
            pass
        return 0.0


def set_realtime_priority(priority: int) -> tuple[str, object]:
    """Switch this process to ``SCHED_FIFO`` at ``priority`` (Linux).

    Returns:
        ``(status, previous)``: a one-line status for the summary, and what
        :func:`restore_priority` needs (``None`` when nothing changed).
    """
    if priority <= 0:
        return "default scheduler", None
    if not hasattr(os, "sched_setscheduler"):
        return "SCHED_FIFO unavailable on this OS", None
    previous = (os.sched_getscheduler(0), os.sched_getparam(0))
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError) as exc:
        return f"SCHED_FIFO refused ({exc}); run as root or grant CAP_SYS_NICE", None
    return f"SCHED_FIFO priority {priority}", previous


def restore_priority(previous: object) -> None:
    """Undo :func:`set_realtime_priority`; never raises."""
    if previous is None:
        return
    policy, param = previous  # type: ignore[misc]
    try:
        os.sched_setscheduler(0, policy, param)
    except OSError:
        pass


def _pct(x: np.ndarray, q: float) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if x.size else float("nan")


def summarize(log: dict[str, np.ndarray], period_s: float) -> dict[str, Any]:
    """Timing summary of the run phase (of all steps when the run phase is empty).

    Args:
        log: Per-step arrays from :func:`run_deploy`.
        period_s: Nominal period [s].

    Returns:
        Dict with ``steps``, ``achieved_rate_hz``, ``period_ms_p50/p99/max``,
        ``jitter_ms_p99/max`` (``|period - nominal|``), ``inference_ms_p50/p99``,
        ``rtt_ms_p50/p99``, ``deadline_misses`` (steps that woke after their deadline),
        ``overruns`` (steps whose work took longer than a period), ``drops`` (no reply),
        ``error_replies``.
    """
    phase = log["phase"]
    sel = phase == Phase.RUN if np.any(phase == Phase.RUN) else np.ones_like(phase, dtype=bool)
    t = log["t_s"][sel]
    periods = np.diff(t)
    n = int(sel.sum())
    out: dict[str, Any] = {
        "steps": n,
        "rate_hz_nominal": 1.0 / period_s,
        "achieved_rate_hz": float((n - 1) / (t[-1] - t[0])) if n > 1 and t[-1] > t[0] else 0.0,
        "period_ms_p50": _pct(periods, 50) * 1e3,
        "period_ms_p99": _pct(periods, 99) * 1e3,
        "period_ms_max": float(periods.max() * 1e3) if periods.size else float("nan"),
        "jitter_ms_p99": _pct(np.abs(periods - period_s), 99) * 1e3,
        "jitter_ms_max": float(np.abs(periods - period_s).max() * 1e3) if periods.size else 0.0,
        "inference_ms_p50": _pct(log["infer_s"][sel], 50) * 1e3,
        "inference_ms_p99": _pct(log["infer_s"][sel], 99) * 1e3,
        "rtt_ms_p50": _pct(log["rtt_s"][sel], 50) * 1e3,
        "rtt_ms_p99": _pct(log["rtt_s"][sel], 99) * 1e3,
        "deadline_misses": int(np.sum(log["late_s"][sel] > 0)),
        "overruns": int(np.sum(log["work_s"][sel] > period_s)),
        "drops": int(np.sum(log["reply"][sel] == 1)),
        "error_replies": int(np.sum(log["reply"][sel] == 2)),
    }
    return out


class _Log:
    """Per-step log rows, turned into arrays at the end."""

    def __init__(self, obs_dim: int, n_joints: int):
        self.rows: list[tuple] = []
        self.obs_dim, self.n = obs_dim, n_joints

    def add(self, *row: object) -> None:
        self.rows.append(row)

    def arrays(self) -> dict[str, np.ndarray]:
        names = ("t_s", "phase", "late_s", "obs", "command", "action", "target", "reply",
                 "status", "t_us", "q_rad", "dq_rad_s", "quat_wxyz", "gyro_rad_s", "accel_m_s2",
                 "infer_s", "rtt_s", "work_s")
        if not self.rows:
            shapes = {"obs": (0, self.obs_dim), "command": (0, 3), "action": (0, self.n),
                      "target": (0, self.n),
                      "q_rad": (0, self.n), "dq_rad_s": (0, self.n), "quat_wxyz": (0, 4),
                      "gyro_rad_s": (0, 3), "accel_m_s2": (0, 3)}
            return {k: np.zeros(shapes.get(k, (0,))) for k in names}
        cols = list(zip(*self.rows, strict=True))
        out = {k: np.asarray(v) for k, v in zip(names, cols, strict=True)}
        for k in ("obs", "command", "action", "target", "q_rad", "dq_rad_s", "quat_wxyz",
                  "gyro_rad_s", "accel_m_s2"):
            out[k] = out[k].astype(np.float32)
        return out


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def policy_robot_interface(robot: RobotInterface, policy_interface: RobotInterface,
                           gait_frequency_hz: float | None, policy_name: str) -> RobotInterface:
    """The host's robot interface as this policy observes it.

    A policy trained with a gait clock (env kwarg ``gait_frequency_hz``) observes the robot's
    blocks plus ``gait_clock``, which the loop computes; its robot interface is ``robot`` with
    that layout (:func:`envs.interface.with_gait_clock`). Any other policy observes ``robot``
    as is.

    Raises:
        PolicyMismatchError: the policy's layout has a gait clock but its metadata gives no gait
            frequency (or the other way round), or ``robot``'s layout has no clock variant.
    """
    has_clock = has_gait_clock(policy_interface.obs_layout)
    if has_clock != (gait_frequency_hz is not None):
        raise PolicyMismatchError(
            f"policy {policy_name!r}: its observation layout "
            f"{policy_interface.obs_layout.version!r} "
            + ("has a gait clock but its env_kwargs give no gait_frequency_hz"
               if has_clock else f"has no gait clock but its env_kwargs give "
               f"gait_frequency_hz={gait_frequency_hz}")
            + ": re-export it with `robotac export` from its run"
        )
    if not has_clock:
        return robot
    try:
        return with_gait_clock(robot)
    except ValueError as exc:
        raise PolicyMismatchError(f"policy {policy_name!r}: {exc}") from exc


class _Step(NamedTuple):
    """What one control step sends and logs (NaN where the phase has none)."""

    target: np.ndarray  # (n,) safe target [rad]
    obs: np.ndarray  # (obs_dim,) observation fed to the policy
    command: np.ndarray  # (3,) shaped velocity command
    action: np.ndarray  # (n,) raw policy output [rad]
    infer_s: float  # inference time [s]


class _Steps:
    """The phases of a run after CONNECT, one control step each (docs/deploy.md, Safety):
    :meth:`ramp`, :meth:`hold` and :meth:`run` make the step's target, :meth:`exchange` sends
    it and judges the reply; the STOP is :func:`_stop`.

    The run carries three "previous" values, each with its own meaning:

    - :attr:`last_sent_rad`: the last target sent, the rate limit's anchor; it starts at the
      measured pose (clipped to the robot's limits), so the ramp's first step moves at most one
      rate-limit step.
    - :attr:`filter_prev_rad`: the env's action filter's previous output (contract 8); the held
      target at the start of the run phase.
    - :attr:`prev_action_rad`: the policy's previous action as the env feeds it back in the
      observation (clipped to the action bounds; the default pose before the first).

    Use :meth:`start` (it reads the pose); it raises like the phases of :func:`run_deploy`.
    """

    def __init__(self, link: RobotLink, policy: Any, robot: RobotInterface, config: LoopConfig,
                 safety: SafetyLayer, state: P.State, log: _Log, shaper: CommandShaper,
                 source: CommandSource, action_filter: ActionFilter,
                 gait_hz: float | None, gait_stands: bool = False) -> None:
        self.link, self.policy, self.robot, self.config = link, policy, robot, config
        self.safety, self.state, self.log = safety, state, log
        self.shaper, self.source, self.action_filter, self.gait_hz = (shaper, source,
                                                                       action_filter, gait_hz)
        self.gait_stands = gait_stands  # env kwarg gait_clock_stands (issue 26)
        self.period = config.period_s
        self.timeout = config.timeout_s
        self.read_timeout = self.timeout / 2  # READ and COMMAND share the reply timeout
        self.q0_rad = state.q_rad.astype(np.float64)
        self.last_sent_rad = safety.clamp_to_limits(self.q0_rad)
        self.rest_pose_rad = self.last_sent_rad.copy()  # lowered to at the stop
        self.filter_prev_rad: np.ndarray | None = None
        self.prev_action_rad = safety.default_pose_rad.copy()
        self.policy_low = np.asarray(policy.action_low, dtype=np.float64)
        self.policy_high = np.asarray(policy.action_high, dtype=np.float64)
        self.run_tick0: int | None = None
        self.drops = self.state_reads = self.stale_obs = 0
        n = robot.n_joints
        self._nan_n, self._nan_obs = np.full(n, np.nan), np.full(policy.obs_dim, np.nan)
        self._nan_cmd = np.full(3, np.nan)
        self._nan_state = (np.full(n, np.nan), np.full(n, np.nan), np.full(4, np.nan),
                           np.full(3, np.nan), np.full(3, np.nan))

    @classmethod
    def start(cls, link: RobotLink, policy: Any, robot: RobotInterface, info: P.Info,
              config: LoopConfig, log: _Log, shaper: CommandShaper, source: CommandSource,
              action_filter: ActionFilter, gait_hz: float | None,
              gait_stands: bool = False) -> _Steps:
        """The rest of CONNECT: check the policy against INFO, build the safety layer, READ the
        pose.

        Raises:
            PolicyMismatchError: the policy does not fit the robot.
            SafetyFault: the READ got a link fault, or the state is unsafe (tilt, status bits).
            LinkError: the robot did not answer READ with a STATE.
        """
        policy.check_robot(info, robot)
        low, high = policy.safe_bounds(info)
        limit_low, limit_high = joint_limits(info)
        safety = SafetyLayer(low, high, robot.arrays()["default_pose_rad"], config.period_s,
                             config.safety, limit_low, limit_high)
        state = link.read(0.2)
        if isinstance(state, LinkFault):
            raise SafetyFault(state.fault, state.detail)
        if not isinstance(state, P.State):
            raise LinkError(f"robot did not answer READ with STATE (got {state!r})")
        safety.check_state(state)
        return cls(link, policy, robot, config, safety, state, log, shaper, source,
                   action_filter, gait_hz, gait_stands)

    def _no_policy(self, target: np.ndarray) -> _Step:
        return _Step(target, self._nan_obs, self._nan_cmd, self._nan_n, float("nan"))

    def ramp(self, t_s: float) -> _Step:
        """RAMP: from the measured pose to the default pose over ``ramp_s``, rate-limited."""
        return self._no_policy(self.safety.rate_limit(self.safety.ramp_target(self.q0_rad, t_s),
                                                      self.last_sent_rad))

    def hold(self) -> _Step:
        """HOLD: the default pose (reached at the rate limit if the ramp was too short)."""
        return self._no_policy(self.safety.rate_limit(self.safety.default_pose_rad,
                                                      self.last_sent_rad))

    def run(self, t_run_s: float, tick: int, t_s: float, late_s: float,
            t_wake: float) -> _Step:
        """RUN: READ the state, build the observation, run the policy, shape its action as the
        env does (action filter), make it safe.

        Raises:
            SafetyFault: a link fault on the READ, an unsafe state, a non-finite action (logged
                with the last target, which stays).
        """
        if self.run_tick0 is None:
            self.run_tick0 = tick
            resync = getattr(self.source, "resync", None)
            if resync is not None:
                resync()  # a gamepad re-reads its sticks' present positions
        raw = self.source.poll(t_run_s)
        command = self.shaper(raw, stand=bool(getattr(self.source, "standing", False)))
        gait = (None if self.gait_hz is None
                else gait_phase(tick - self.run_tick0, self.gait_hz, self.period))
        if self.config.fresh_state:
            self.state_reads += 1
            fresh = self.link.read(self.read_timeout)
            if isinstance(fresh, LinkFault):
                raise SafetyFault(fresh.fault, fresh.detail)
            if isinstance(fresh, P.State):
                self.safety.check_state(fresh)
                self.state = fresh
            else:  # dropped or refused: the STATE of the last COMMAND, a period old
                self.stale_obs += 1
        state = self.state
        obs = quadruped_obs(state.quat_wxyz, state.gyro_rad_s, state.q_rad, state.dq_rad_s,
                            self.prev_action_rad, command, self.robot, gait,
                            clock_stands=self.gait_stands)
        t_i = time.perf_counter()
        action = self.policy(obs)
        infer_s = time.perf_counter() - t_i
        try:
            clipped = np.clip(np.asarray(action, dtype=np.float64), self.policy_low,
                              self.policy_high)
            if self.filter_prev_rad is None:
                self.filter_prev_rad = self.last_sent_rad
            shaped = (action if self.action_filter.is_identity
                      else self.action_filter.apply(clipped, self.filter_prev_rad, self.period))
            target = self.safety.filter(shaped, self.last_sent_rad)
            self.prev_action_rad, self.filter_prev_rad = clipped, shaped
        except SafetyFault:
            self.log.add(t_s, Phase.RUN, late_s, obs, command, action, self.last_sent_rad, 1, 0,
                         0, *self._nan_state, infer_s, float("nan"),
                         time.perf_counter() - t_wake)
            raise
        return _Step(target, obs, command, action, infer_s)

    def exchange(self, phase: Phase, step: _Step, t_s: float, late_s: float,
                 t_wake: float) -> None:
        """Send the step's target (one COMMAND), log the step, judge the reply.

        Raises:
            SafetyViolation: the target failed the wire guard (a bug: nothing was sent).
            SafetyFault: a link fault, ERROR 5 or 6, an unsafe STATE, or
                ``max_consecutive_drops`` periods in a row without a STATE.
        """
        wire = self.safety.guard(step.target)
        reply = self.link.command(wire, self.timeout)
        rtt = self.link.last_rtt_s if reply is not None else float("nan")
        self.last_sent_rad = step.target
        work_s = time.perf_counter() - t_wake
        if isinstance(reply, P.State):
            self.drops = 0
            self.state = reply
            self.log.add(t_s, phase, late_s, step.obs, step.command, step.action, wire, 0,
                         reply.status, reply.t_us, reply.q_rad, reply.dq_rad_s, reply.quat_wxyz,
                         reply.gyro_rad_s, reply.accel_m_s2, step.infer_s, rtt, work_s)
            self.safety.check_state(reply)
            return
        self.log.add(t_s, phase, late_s, step.obs, step.command, step.action, wire,
                     2 if reply is not None else 1, 0, 0, *self._nan_state, step.infer_s, rtt,
                     work_s)
        if isinstance(reply, LinkFault):
            raise SafetyFault(reply.fault, reply.detail)
        if isinstance(reply, P.Error) and reply.code == P.ErrorCode.NOT_ARMED:
            raise SafetyFault(Fault.NOT_ARMED)
        if isinstance(reply, P.Error) and reply.code == P.ErrorCode.TARGET_OUT_OF_RANGE:
            raise SafetyFault(Fault.OUT_OF_RANGE, f"target {wire.tolist()}")
        self.drops += 1
        if self.drops >= self.config.safety.max_consecutive_drops:
            raise SafetyFault(Fault.LINK_LOST, f"{self.drops} periods without a STATE")


def run_deploy(
    link: RobotLink | SerialLink,
    policy: Any,
    config: LoopConfig,
    robot: RobotInterface = QUADRUPED_INTERFACE,
    on_step: Callable[[int, Phase], None] | None = None,
    commands: CommandSource | None = None,
) -> DeployResult:
    """Run the phases on a connected robot and stop it safely, whatever happens.

    Args:
        link: A :class:`~deploy.robot_link.RobotLink` (protocol v1, STS bus, in-process
            virtual robot); an open :class:`SerialLink` is wrapped in a
            :class:`~deploy.robot_link.V1Link`.
        policy: A :class:`deploy.policy.OnnxPolicy` (or any object with its ``interface``,
            ``obs_dim``, ``__call__``, ``check_robot`` and ``safe_bounds``).
        config: :class:`LoopConfig`.
        robot: The host's model of the robot (joint order, default pose, observation layout).
        on_step: Optional callback ``(step_index, phase)`` after each step (progress display).
        commands: Where the velocity command comes from (:mod:`deploy.commands`), polled once
            per period with the time since the start of the run phase (negative during ramp and
            hold, where it is only drained: what piles up there, gamepad events or key bytes,
            would otherwise overflow; its ``resync()``, if any, runs at the start of the run
            phase); default ``FixedCommand(config.command)``. The caller closes it.

    Returns:
        :class:`DeployResult`. Log arrays (``N`` steps): ``t_s`` (N,) wake time since start [s],
        ``phase`` (N,), ``late_s`` (N,) lateness at wake [s], ``obs`` (N, obs_dim) (NaN outside
        the run phase), ``command`` (N, 3) shaped command fed to the policy (NaN outside the run
        phase), ``action`` (N, n) raw policy output (NaN outside the run phase), ``target``
        (N, n) target sent [rad], ``reply`` (N,) 0 STATE / 1 none / 2 ERROR,
        ``status`` (N,), ``t_us`` (N,), ``q_rad``, ``dq_rad_s`` (N, n), ``quat_wxyz`` (N, 4),
        ``gyro_rad_s``, ``accel_m_s2`` (N, 3) from the STATE (NaN without one), ``infer_s``,
        ``rtt_s``, ``work_s`` (N,) [s].

    Raises:
        LiveCommandRefused: ``commands`` is live and the policy was trained on one command
            (raised before connecting).
        PolicyMismatchError: the policy does not fit the robot (raised after the stop), or its
            gait clock and its metadata disagree (raised before connecting).
        LinkError: the robot never answered HELLO.
        Exception: any unexpected error, re-raised after the ESTOP in ``finally:``.
    """
    link = as_robot_link(link)
    period = config.period_s
    timeout = config.timeout_s
    n = robot.n_joints
    log = _Log(policy.obs_dim, n)
    metadata = getattr(policy, "metadata", None) or {}
    env_kwargs = metadata.get("env_kwargs") or {}
    source = commands if commands is not None else FixedCommand(config.command)
    command_warnings = check_source_for_policy(env_kwargs, source,
                                               str(getattr(policy, "path", "the policy")))
    shaper = CommandShaper(*policy_command_ranges(metadata), period,
                           max_rate=config.command_max_rate)
    for text in command_warnings:
        shaper.note(text)
    if isinstance(source, FixedCommand):
        # The env gives a fixed command from step 0 (contract 8): no ramp from zero, which a
        # policy trained on that one command would see as far out of its distribution.
        shaper.start_at(source.value)
    action_filter = ActionFilter.from_env_kwargs(env_kwargs)
    # A policy trained with a gait clock sees the clock's phase: the same function of the steps
    # since the start of the run phase as of the steps since reset in the env.
    gait_hz = env_kwargs.get("gait_frequency_hz")
    # ... and, trained with gait_clock_stands (issue 26), reads the clock as (0, 0) at a standing
    # command; a policy exported before that setting has no such key and runs as it was trained.
    gait_stands = bool(env_kwargs.get("gait_clock_stands", False))
    robot = policy_robot_interface(robot, policy.interface, gait_hz,
                                   str(getattr(policy, "path", "the policy")))
    # Warm up onnxruntime (the first runs allocate) before anything moves.
    for _ in range(3):
        policy(np.zeros(policy.obs_dim, dtype=np.float32))

    fault: Fault | None = None
    stop_reason = "run completed"
    stopped_with = "none"
    info: P.Info | None = None
    failure: BaseException | None = None
    link_alive = True
    steps: _Steps | None = None
    clock = DeadlineClock(period, config.spin_s)
    sched_status, sched_prev = set_realtime_priority(config.rt_priority)
    # No garbage-collector pauses inside the loop: the per-step objects hold no reference
    # cycles (reference counting frees them); collect and freeze what exists now.
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    # From here on a stop signal only asks for the stop; the loop answers at its next deadline.
    stop_signals = StopSignals().install()
    try:
        # Phase CONNECT: HELLO -> INFO (arms the robot), the policy checked against it, the pose.
        info = link.connect(config.hello_attempts)
        stop_signals.check()
        steps = _Steps.start(link, policy, robot, info, config, log, shaper, source,
                             action_filter, gait_hz, gait_stands)
        ramp_end = config.safety.ramp_s
        hold_end = ramp_end + config.safety.hold_s
        run_end = hold_end + config.duration_s
        t0 = clock.start()
        k = 0
        while True:
            late = clock.wait()
            t_wake = time.perf_counter()
            t = t_wake - t0
            stop_signals.check()
            if t >= run_end:
                break
            if t < hold_end:
                # Drain the source (gamepad events, key bytes) so nothing piles up before the
                # run; nothing of it reaches the policy yet.
                source.poll(t - hold_end)
            if t < ramp_end:
                phase, step = Phase.RAMP, steps.ramp(t)
            elif t < hold_end:
                phase, step = Phase.HOLD, steps.hold()
            else:
                phase, step = Phase.RUN, steps.run(t - hold_end, clock.tick, t, late, t_wake)
            steps.exchange(phase, step, t, late, t_wake)
            if on_step is not None:
                on_step(k, phase)
            k += 1
    except SafetyFault as exc:
        fault, stop_reason = exc.fault, str(exc)
    except LinkError as exc:
        link_alive = not exc.port_lost
        if info is None and link_alive:
            failure = exc
        fault, stop_reason = Fault.LINK_ERROR, str(exc)
    except StopRequested as exc:
        stop_reason = str(exc)
    except KeyboardInterrupt:
        stop_reason = "interrupted by the operator (Ctrl-C)"
    except BaseException as exc:  # noqa: BLE001 - stop the robot first, then re-raise
        failure = exc
        stop_reason = f"{type(exc).__name__}: {exc}"
    finally:
        # The first statement: every stop signal from here on is held back, so neither the stop
        # nor the log and summary below can be skipped (a signal that lands before it, in the
        # ``except`` clauses, was only recorded: the handler never raises).
        stop_signals.stopping = True
        try:
            # Lower the body first where the bus still works (DESIGN.md contract 7).
            lower = link_alive and (fault is None or fault in LOWER_FAULTS)
            stopped_with, lowering = _stop(
                link, link_alive, fault is not None or failure is not None,
                steps.last_sent_rad if steps else None, steps.safety if steps else None,
                robot, stop_signals, steps.rest_pose_rad if steps and lower else None, period,
                timeout,
                lower_why=None if lower else (
                    f"released at once ({fault.name if fault else 'the port is gone'}: the bus "
                    "or the robot cannot be trusted to hold a pose)"))
            restore_priority(sched_prev)
            gc.unfreeze()
            if gc_was_enabled:
                gc.enable()
            arrays = log.arrays()
            summary = summarize(arrays, period) if arrays["t_s"].size else {"steps": 0}
            summary.update(
                {
                    "deadline_misses_clock": clock.misses,
                    "skipped_periods": clock.skipped,
                    "link": link.stats_dict(),
                    "link_kind": link.kind,
                    "fault": fault.name if fault else None,
                    "stop_reason": stop_reason,
                    "stop_signal": stop_signals.requested,
                    "stopped_with": stopped_with,
                    "lowering": lowering,
                    "fresh_state": config.fresh_state,
                    "state_reads": steps.state_reads if steps else 0,
                    "stale_observations": steps.stale_obs if steps else 0,
                    "clamped_steps": steps.safety.n_clamped if steps else 0,
                    "rate_limited_steps": steps.safety.n_rate_limited if steps else 0,
                    "non_finite_actions": steps.safety.n_non_finite if steps else 0,
                    "scheduler": sched_status,
                    "action_filter": action_filter.to_dict(),
                    "command_source": source.name,
                    "command_shaping": shaper.to_dict(),
                    "command_clipped_steps": shaper.n_clipped,
                    "command_rate_limited_steps": shaper.n_rate_limited,
                    "command_warnings": list(shaper.warnings),
                    "command_events": [f"t={t_e:.2f} s: {text}"
                                       for t_e, text in getattr(source, "events", [])],
                }
            )
            if config.log_path is not None and arrays["t_s"].size:
                _save_npz(Path(config.log_path), {
                    **arrays, "link_kind": np.array(link.kind),
                    "command_source": np.array(source.name),
                    "command_events": np.array(summary["command_events"], dtype=str),
                })
        finally:
            stop_signals.restore()
    if failure is not None:
        raise failure
    return DeployResult(summary, arrays, fault, stop_reason, stopped_with, info,
                        Path(config.log_path) if config.log_path and arrays["t_s"].size else None)


#: The signals that end a deploy run: Ctrl-C, ``kill``, a dropped terminal or SSH session
#: (SIGHUP: STS servos have no watchdog, so a deploy that died of it would leave torque on) and
#: Ctrl-\\. Each of them stops the robot through the same path (DESIGN.md contract 7).
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


class StopRequested(Exception):
    """A stop signal (:data:`STOP_SIGNALS`) ended the run; :attr:`signame` says which."""

    def __init__(self, signame: str):
        self.signame = signame
        reasons = {"SIGINT": "interrupted by the operator (Ctrl-C)",
                   "SIGHUP": "stopped by SIGHUP (the terminal or SSH session hung up)",
                   "SIGQUIT": "stopped by SIGQUIT (Ctrl-\\)"}
        super().__init__(reasons.get(signame, f"stopped by {signame}"))


class StopSignals:
    """Turn the stop signals into a stop request that the loop acts on; never raise mid-stop.

    A handler that raises (Python's ``KeyboardInterrupt``) can land between any two bytecodes:
    a second Ctrl-C between the loop's exception and the stop would skip the stop. So while
    this guard is installed (for the whole of :func:`run_deploy`), the handler only *records*
    the request, and the loop checks it at each deadline (:meth:`check`, within one control
    period) and leaves through its ``finally:``, which sets :attr:`stopping`; every signal after
    the first is held back and noted (:meth:`notes`), never raised. One escape hatch: a repeated
    signal while the first has gone unanswered for :attr:`escape_s` (the loop hangs in a call
    that does not return) raises ``KeyboardInterrupt``, so the operator is never locked out.

    Signals ignored when the guard is installed (``SIG_IGN``: ``nohup`` ignores SIGHUP, a shell's
    background job SIGINT) stay ignored: the user chose that. Handlers can only be installed from
    the main thread; elsewhere the guard does nothing (no signal handler runs there anyway).
    """

    escape_s = 2.0

    def __init__(self) -> None:
        self.requested: str | None = None
        self.stopping = False
        self.held: list[str] = []
        self._t_requested = 0.0
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        """Install the handlers (main thread only; idempotent). Returns ``self``."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return self
        for name in STOP_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None or signal.getsignal(sig) is signal.SIG_IGN:
                continue
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        """Put the previous handlers back (a signal still pending is recorded first).

        A signal that lands after one handler is back acts under that handler (the CLI's raises
        ``KeyboardInterrupt``); the remaining ones are still put back on the way out.
        """
        items = [(sig, handler if handler is not None else signal.SIG_DFL)
                 for sig, handler in self._previous.items()]
        self._previous.clear()
        try:
            while items:
                sig, handler = items.pop()
                signal.signal(sig, handler)
        finally:
            for sig, handler in items:
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.requested is None and not self.stopping:
            self.requested, self._t_requested = name, time.monotonic()
            return
        self.held.append(name)
        if not self.stopping and time.monotonic() - self._t_requested > self.escape_s:
            raise KeyboardInterrupt  # the loop has not answered the first signal: it hangs

    def check(self) -> None:
        """Raise :class:`StopRequested` when a stop signal came and the stop has not begun."""
        if self.requested is not None and not self.stopping:
            raise StopRequested(self.requested)

    def notes(self) -> list[str]:
        """One line per signal held back while the stop was under way."""
        return [f"{name} during the stop was held back until the stop was sent"
                for name in dict.fromkeys(self.held)]

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()


def _stop(
    link: RobotLink | SerialLink,
    link_alive: bool,
    estop: bool,
    last_target: np.ndarray | None,
    safety: SafetyLayer | None,
    robot: RobotInterface,
    signals: StopSignals | None = None,
    rest_pose: np.ndarray | None = None,
    period_s: float = 0.02,
    timeout_s: float = 0.012,
    lower_why: str | None = None,
) -> tuple[str, str]:
    """Stop the robot: lower it to ``rest_pose`` where asked, then ESTOP after a fault, else a
    passive COMMAND; retried. Never raises.

    Lowering (``rest_pose`` given, with ``safety`` and ``last_target``): position targets from
    ``last_target`` to ``rest_pose`` over ``safety.config.lower_s``, one per control period,
    rate-limited and wire-guarded like every target. It ends early, and torque is released at
    once, on a reply that is not a STATE (the bus stopped answering), an exception, or a second
    stop signal (the operator wants it released now).

    The stop signals are held back meanwhile (:class:`StopSignals`; ``signals``, when given, is
    the run's guard, already installed).

    Returns:
        ``(stopped_with, lowering)``. ``stopped_with``: how the robot was left: ``"passive"`` or
        ``"estop"`` (confirmed by the robot), ``"... sent, not confirmed ..."``, or
        ``"none (...)"`` when the port is gone (the link's ``port_lost_note``: protocol v1 robots
        go passive on their watchdog, STS servos have none), then the notes of held signals.
        ``lowering``: one line, how the body was brought down (or why it was not).
    """
    guard = signals if signals is not None else StopSignals()
    guard.stopping = True
    with contextlib.ExitStack() as stack:
        if signals is None:
            stack.enter_context(guard)
        lowering = lower_why or "released at once (nothing to lower from)"
        if rest_pose is not None and safety is not None and last_target is not None and \
                link_alive and safety.config.lower_s > 0:
            try:
                last_target, lowering = _lower(link, last_target, rest_pose, safety, period_s,
                                               timeout_s, guard)
            except BaseException as exc:  # noqa: BLE001 - the stop path must not raise
                lowering = f"lowering stopped by {type(exc).__name__}: {exc}; released"
        elif rest_pose is not None and safety is not None and safety.config.lower_s == 0:
            lowering = "released at once (lower_s = 0)"
        result = _stop_unblocked(link, link_alive, estop, last_target, safety, robot)
    return "; ".join([result, *guard.notes()]), lowering


def _lower(
    link: RobotLink,
    last_target: np.ndarray,
    rest_pose: np.ndarray,
    safety: SafetyLayer,
    period_s: float,
    timeout_s: float,
    guard: StopSignals,
) -> tuple[np.ndarray, str]:
    """Bring the body down to ``rest_pose`` over ``safety.config.lower_s`` (see :func:`_stop`).

    Returns:
        ``(last target sent, one line saying how it went)``.
    """
    link = as_robot_link(link)
    n = max(1, round(safety.config.lower_s / period_s))
    start = safety.clamp_to_limits(last_target)
    rest = safety.clamp_to_limits(rest_pose)
    held_before = len(guard.held)
    target = start
    clock = DeadlineClock(period_s)
    clock.start()
    for k in range(1, n + 1):
        clock.wait()
        if len(guard.held) > held_before:
            return target, (f"lowering cut short after {k - 1} of {n} periods by "
                            f"{guard.held[-1]}; released")
        target = safety.rate_limit(start + (k / n) * (rest - start), target)
        reply = link.command(safety.guard(target), timeout_s)
        if not isinstance(reply, P.State):
            why = getattr(reply, "detail", None) or type(reply).__name__
            return target, (f"lowering stopped after {k} of {n} periods (no STATE: {why}); "
                            "released")
    return target, f"lowered to the rest pose in {n * period_s:.2f} s ({n} periods), released"


def _stop_unblocked(
    link: RobotLink | SerialLink,
    link_alive: bool,
    estop: bool,
    last_target: np.ndarray | None,
    safety: SafetyLayer | None,
    robot: RobotInterface,
) -> str:
    link = as_robot_link(link)
    port_lost_note = getattr(link, "port_lost_note",
                             "none (port gone; the robot's watchdog makes it passive)")
    unconfirmed_note = getattr(link, "stop_unconfirmed_note", "")
    if not link_alive:
        return port_lost_note
    body = np.asarray(robot.default_pose_rad, dtype=np.float32)
    if not estop:
        # Mode 0 ignores the targets; still send a safe pose, never garbage. The guard cannot
        # refuse a target the safety layer made, but this runs in ``finally:`` and must not raise
        # (the robot would get no stop frame at all): fall back to the default pose.
        if last_target is not None and safety is not None:
            try:
                body = safety.guard(last_target)
            except SafetyViolation:
                pass
    kind = "estop" if estop else "passive"
    why = ""
    for _ in range(3):
        try:
            reply = link.estop(0.1) if estop else link.passive(body, 0.1)
        except LinkError as exc:
            if exc.port_lost:
                return port_lost_note
            why = f" ({exc})"  # e.g. a port left busy: try again
            continue
        except BaseException as exc:  # noqa: BLE001 - the stop path must not raise; retry
            why = f" ({type(exc).__name__}: {exc})"
            continue
        if isinstance(reply, P.State):
            return kind
        if isinstance(reply, LinkFault):
            # The link retried itself and names what it could not confirm (STS: a servo whose
            # torque does not read back off).
            return f"{kind} sent, not confirmed: {reply.detail}{unconfirmed_note}"
    return f"{kind} sent, not confirmed{why}{unconfirmed_note}"
