"""The deploy loop end to end against the virtual robot process, through a pty.

Each run is short (ramp 0.3 s, hold 0.2 s, policy 1 s at 50 Hz). What reached the robot is checked
on the robot side, from the virtual robot's own record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from deploy_test_helpers import VirtualTime, assert_targets_within_limits

from deploy import protocol as P
from deploy.link import SerialLink
from deploy.loop import DeadlineClock, LoopConfig, Phase, _stop, run_deploy
from deploy.policy import OnnxPolicy, PolicyMismatchError
from deploy.safety import Fault, SafetyConfig, SafetyLayer
from envs.interface import QUADRUPED_INTERFACE

# No lowering at the stop (lower_s=0): these tests count the COMMANDs of the phases; the
# lowering has its own tests below.
SHORT = SafetyConfig(ramp_s=0.3, hold_s=0.2, lower_s=0.0)


def _config(tmp_path: Path | None = None, duration_s: float = 1.0, **kw) -> LoopConfig:
    return LoopConfig(rate_hz=50, duration_s=duration_s, safety=kw.pop("safety", SHORT),
                      log_path=tmp_path / "log.npz" if tmp_path else None, **kw)


def test_handshake_run_and_log(virtual_robot, standing_policy, tmp_path):
    robot = virtual_robot()
    policy = OnnxPolicy(standing_policy)
    with SerialLink(robot.port) as link:
        res = run_deploy(link, policy, _config(tmp_path, command=(0.3, 0.0, 0.0)))
    rec = robot.stop()
    assert res.ok and res.stop_reason == "run completed" and res.stopped_with == "passive"
    assert res.info is not None and res.info.n_joints == 12
    s = res.summary
    assert s["drops"] == 0 and s["error_replies"] == 0
    # Robot side: one HELLO, every position command inside the limits, ends passive.
    assert rec["hellos"] == 1 and rec["errors_sent"] == {}
    assert rec["position_commands"] == int(np.sum(res.log["reply"] == 0))
    assert rec["passive"] and rec["passive_commands"] == 1
    assert_targets_within_limits(rec)
    # The log holds every phase, the observation the env function builds and the commands sent.
    log = dict(np.load(tmp_path / "log.npz"))
    assert set(np.unique(log["phase"])) == {Phase.RAMP, Phase.HOLD, Phase.RUN}
    run = log["phase"] == Phase.RUN
    # Steps and the timing summary, not a rate (a busy machine skips periods, and counts them):
    # at most one step per period of the 1 s run (+1 at the phase edge), misses logged per step.
    assert 1 <= s["steps"] == int(run.sum()) <= 51
    assert s["deadline_misses"] == int(np.sum(log["late_s"][run] > 0))
    assert s["skipped_periods"] >= 0 and s["achieved_rate_hz"] > 0
    assert log["obs"].shape == (len(log["t_s"]), 45) and np.isfinite(log["obs"][run]).all()
    # The command block is the shaped command: a fixed command from the first step, as the env
    # gives it (no ramp from zero; a live source's ramp: test_commands).
    np.testing.assert_array_equal(log["obs"][run][:, 42:], log["command"][run])
    np.testing.assert_allclose(log["command"][run], [[0.3, 0.0, 0.0]] * int(run.sum()))
    assert np.isfinite(log["target"]).all()
    # The standing policy keeps the body level.
    g = log["obs"][run][:, 0:3]
    assert (g[:, 2] < -0.95).all()


def test_watchdog_trips_when_host_stalls(virtual_robot, standing_policy):
    robot = virtual_robot("--watchdog-ms", "100")
    inner = OnnxPolicy(standing_policy)
    calls = []

    class StallingPolicy:
        """The real policy, with one 250 ms stall (a host hiccup) at its 10th call."""

        def __getattr__(self, name):
            return getattr(inner, name)

        def __call__(self, obs):
            calls.append(1)
            if len(calls) == 13:  # 3 warm-up calls + 10 steps
                time.sleep(0.25)
            return inner(obs)

    with SerialLink(robot.port) as link:
        res = run_deploy(link, StallingPolicy(), _config())
    rec = robot.stop()
    assert res.fault in (Fault.NOT_ARMED, Fault.WATCHDOG)
    # The 250 ms stall is counted; a busy machine may add overruns of its own.
    assert res.summary["overruns"] >= 1 and res.log["work_s"].max() >= 0.25
    assert rec["watchdog_trips"] == 1 and rec["errors_sent"].get("NOT_ARMED", 0) <= 1
    assert rec["passive"] and not rec["armed"]
    assert_targets_within_limits(rec)


def test_servo_fault_leads_to_estop(virtual_robot, standing_policy):
    robot = virtual_robot("--servo-fault-after-s", "0.8")
    with SerialLink(robot.port) as link:
        res = run_deploy(link, OnnxPolicy(standing_policy), _config())
    rec = robot.stop()
    assert res.fault is Fault.SERVO_FAULT and res.stopped_with == "estop"
    # Stopped at the first STATE that reported the fault (at the robot's 0.8 s): no logged step
    # before the last one saw it (its READ or COMMAND reply raised at once). Not a time window.
    faulted = (res.log["status"].astype(int) & int(P.Status.SERVO_FAULT)) != 0
    assert not faulted[:-1].any()
    assert rec["estop_after_servo_fault"] and rec["estops"] == 1 and rec["passive"]
    assert_targets_within_limits(rec)


def test_recovers_from_corrupt_frames(virtual_robot, standing_policy):
    robot = virtual_robot("--corrupt", "0.05", "--garbage", "0.05", "--seed", "2")
    with SerialLink(robot.port) as link:
        res = run_deploy(link, OnnxPolicy(standing_policy), _config(duration_s=2.0))
    rec = robot.stop()
    assert res.ok, res.stop_reason
    link_stats = res.summary["link"]
    assert link_stats["crc_errors"] + link_stats["decode_errors"] > 5
    assert rec["corrupted_rx_injected"] + rec["corrupted_tx_injected"] > 5
    assert rec["errors_sent"].get("BAD_CRC", 0) >= 1  # corrupted COMMANDs answered ERROR 1
    # Rode through to the end (how many of the 100 periods ran is the machine's load).
    assert res.stop_reason == "run completed" and res.summary["steps"] >= 1 and rec["passive"]
    assert_targets_within_limits(rec)


def test_nan_from_policy_never_reaches_the_wire(virtual_robot, standing_policy):
    robot = virtual_robot()
    inner = OnnxPolicy(standing_policy)

    class NanPolicy:
        def __getattr__(self, name):
            return getattr(inner, name)

        def __call__(self, obs):
            a = inner(obs).copy()
            a[4] = np.nan
            return a

    with SerialLink(robot.port) as link:
        res = run_deploy(link, NanPolicy(), _config())
    rec = robot.stop()
    assert res.fault is Fault.NON_FINITE_ACTION and res.stopped_with == "estop"
    assert np.isfinite(res.log["target"]).all()
    assert rec["non_finite_targets"] == 0 and rec["estops"] == 1
    assert "OUT_OF_RANGE" not in str(rec["errors_sent"])
    assert_targets_within_limits(rec)


def test_vanished_port_stops_cleanly(virtual_robot, standing_policy):
    robot = virtual_robot()
    n_steps = []

    def kill_at_step(k, phase):
        n_steps.append(k)
        if k == 20:
            robot.kill()

    with SerialLink(robot.port) as link:
        res = run_deploy(link, OnnxPolicy(standing_policy), _config(), on_step=kill_at_step)
    assert res.fault is Fault.LINK_ERROR and "vanished" in res.stop_reason
    assert res.stopped_with.startswith("none (port gone")
    assert max(n_steps) == 20  # not a hang: stopped at the step after the kill (no time bound)


def test_mismatched_policy_refused_before_anything_moves(virtual_robot, other_robot_policy):
    robot = virtual_robot()
    with SerialLink(robot.port) as link, pytest.raises(PolicyMismatchError) as info:
        run_deploy(link, OnnxPolicy(other_robot_policy), _config())
    rec = robot.stop()
    msg = str(info.value)
    assert "robot" in msg and "policy" in msg
    assert "quadruped-obs-v1" in msg and "quadruped-obs-v2" in msg
    assert rec["position_commands"] == 0 and rec["passive"]


def test_a_policy_for_another_robot_is_refused_naming_both(virtual_robot, standing_policy,
                                                           tmp_path):
    """The metadata's robot name (issue 23) is checked first; the standing policy, like the
    shipped ones, names no robot and is taken as the default quadruped's (it runs elsewhere)."""
    import onnx

    assert OnnxPolicy(standing_policy).robot_name == "quadruped"
    model = onnx.load(str(standing_policy))
    for p in model.metadata_props:
        if p.key == "robotac":
            meta = json.loads(p.value)
            meta["robot"] = {"name": "dog", "description_sha256": "0" * 64}
            p.value = json.dumps(meta)
    path = tmp_path / "dog.onnx"
    onnx.save(model, str(path))
    robot = virtual_robot()
    with SerialLink(robot.port) as link, pytest.raises(PolicyMismatchError) as info:
        run_deploy(link, OnnxPolicy(path), _config())
    rec = robot.stop()
    assert "trained for robot 'dog', but this is robot 'quadruped'" in str(info.value)
    assert rec["position_commands"] == 0 and rec["passive"]


class _BangBangPolicy:
    """The standing policy's interface, but actions jump +-0.2 rad around the default pose every
    step (0.4 rad per step, more than the safety layer's 15 rad/s * 20 ms); ``env_kwargs`` as in
    the metadata of a policy trained with them."""

    def __init__(self, inner: OnnxPolicy, env_kwargs: dict):
        self.inner, self.k = inner, 0
        self.metadata = {**inner.metadata, "env_kwargs": env_kwargs}
        self.default = QUADRUPED_INTERFACE.arrays()["default_pose_rad"]

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, obs):
        self.k += 1
        return (self.default + 0.2 * (-1) ** self.k).astype(np.float32)


def _run_in_process(policy, duration_s=0.5):
    from deploy.sim.virtual_robot import InProcessLink

    cfg = LoopConfig(rate_hz=50, duration_s=duration_s, safety=SafetyConfig(ramp_s=0.1, hold_s=0.1))
    return run_deploy(InProcessLink(), policy, cfg)


def test_action_filter_from_the_metadata_shapes_targets_before_the_safety_layer(standing_policy):
    """Contract 8: the env's ActionFilter settings (ONNX metadata env_kwargs) apply at deploy."""
    rate = 3.0  # rad/s, well under the safety layer's 15 rad/s
    res = _run_in_process(_BangBangPolicy(OnnxPolicy(standing_policy),
                                          {"action_max_rate_rad_s": rate}))
    assert res.ok, res.stop_reason
    log = res.log
    first_run = int(np.argmax(log["phase"] == Phase.RUN))
    target = log["target"][first_run - 1:].astype(np.float64)  # from the last HOLD target
    steps = np.abs(np.diff(target, axis=0))
    assert steps.max() <= rate * 0.02 + 1e-5  # never faster than the trained slew limit
    assert steps.max() > rate * 0.02 - 1e-4  # and the filter is what limits it
    assert res.summary["rate_limited_steps"] == 0  # the safety layer's limit stays idle
    assert res.summary["action_filter"] == {"alpha": 1.0, "max_rate_rad_s": rate}
    # The observation's prev_action stays the policy's action (as the env feeds it back).
    default = QUADRUPED_INTERFACE.arrays()["default_pose_rad"]
    prev = log["obs"][first_run + 1:][:, 30:42] + default
    np.testing.assert_allclose(np.abs(prev - default), 0.2, atol=1e-5)
    # Low-pass too: alpha 0.5 halves each move towards the action (same function as the env).
    from envs.interface import ActionFilter

    res = _run_in_process(_BangBangPolicy(OnnxPolicy(standing_policy),
                                          {"action_filter_alpha": 0.5}), duration_s=0.2)
    run = res.log["phase"] == Phase.RUN
    first_run = int(np.argmax(run))  # of this run, not the one above
    assert first_run > 0
    f, prev_t = ActionFilter(0.5), res.log["target"][first_run - 1].astype(np.float64)
    for a, t in zip(res.log["action"][run], res.log["target"][run], strict=True):
        prev_t = f.apply(a.astype(np.float64), prev_t, 0.02)
        np.testing.assert_allclose(t, prev_t, atol=1e-5)


def test_without_an_action_filter_the_safety_layer_limits_as_before(standing_policy):
    policy = OnnxPolicy(standing_policy)
    res = _run_in_process(_BangBangPolicy(policy, {}))
    assert res.ok, res.stop_reason
    run = res.log["phase"] == Phase.RUN
    steps = np.abs(np.diff(res.log["target"][run].astype(np.float64), axis=0))
    assert steps.max() == pytest.approx(15.0 * 0.02, abs=1e-5)  # the safety layer's 15 rad/s
    assert res.summary["rate_limited_steps"] >= run.sum() // 2  # every other step
    assert res.summary["action_filter"] == {"alpha": 1.0, "max_rate_rad_s": None}
    # Exactly what the safety layer alone makes of the actions (the loop before the filter).
    safety = SafetyLayer(*policy.safe_bounds(res.info),
                         QUADRUPED_INTERFACE.arrays()["default_pose_rad"], 0.02)
    last = res.log["target"][int(np.argmax(run)) - 1].astype(np.float64)
    for a, t in zip(res.log["action"][run], res.log["target"][run], strict=True):
        last = safety.filter(a, last)
        np.testing.assert_allclose(t, last, atol=1e-6)


def test_deadline_clock_does_not_drift(monkeypatch):
    import deploy.loop

    vt = VirtualTime()
    monkeypatch.setattr(deploy.loop, "time", vt)
    period = 0.005
    clock = DeadlineClock(period)
    t0 = clock.start()
    wakes, lates = [], []
    for i in range(101):
        lates.append(clock.wait())
        wakes.append(vt.now)
        vt.now += 0.0175 if i == 50 else 0.001  # 1 ms of work; once a 3.5-period stall
    # The stall is one missed deadline, 12.5 ms late, and the 2 whole periods it covered are
    # skipped (no burst of catch-up steps); every other step wakes on the grid t0 + k * period.
    assert clock.misses == 1 and clock.skipped == 2 and clock.tick == 102
    assert lates[51] == pytest.approx(0.0125, abs=1e-5)
    on_time = [w for w, late in zip(wakes, lates, strict=True) if late == 0.0]
    k = np.round((np.array(on_time) - t0) / period)
    np.testing.assert_allclose(np.array(on_time) - t0, k * period, rtol=0, atol=2e-6)
    # 100 periods of 1 ms work each: sleep(period) after the work would end >= 100 ms late; the
    # deadline schedule ends on its grid, the skipped periods included.
    end_error = (wakes[-1] - t0) - period * (100 + clock.skipped)
    assert 0.0 <= end_error < 2e-6, end_error


class _RecordingLink:
    """Stands in for a SerialLink: records what is sent, answers with a STATE."""

    def __init__(self):
        self.sent: list = []

    def exchange(self, msg, timeout_s=None):
        self.sent.append(msg)
        q = np.zeros(12, dtype=np.float32)
        return P.State(1, 0, 0, q, q, [1, 0, 0, 0], [0, 0, 0], [0, 0, 9.81])


def test_stop_never_raises_and_sends_passive_or_estop():
    arr = QUADRUPED_INTERFACE.arrays()
    safety = SafetyLayer(arr["joint_low_rad"].astype(np.float32).astype(np.float64),
                         arr["joint_high_rad"].astype(np.float32).astype(np.float64),
                         arr["default_pose_rad"], 0.02)
    link = _RecordingLink()
    inside = arr["default_pose_rad"] + 0.01
    assert _stop(link, True, False, inside, safety, QUADRUPED_INTERFACE)[0] == "passive"
    assert link.sent[-1].mode == P.Mode.PASSIVE
    np.testing.assert_array_equal(link.sent[-1].target_rad, inside.astype(np.float32))
    # A target the guard refuses (NaN, out of the limits) must not escape the finally: path:
    # the passive COMMAND carries the default pose instead.
    for bad in (np.full(12, np.nan), arr["joint_high_rad"] + 1.0):
        assert _stop(link, True, False, bad, safety, QUADRUPED_INTERFACE)[0] == "passive"
        np.testing.assert_array_equal(link.sent[-1].target_rad,
                                      arr["default_pose_rad"].astype(np.float32))
    assert _stop(link, True, True, bad, safety, QUADRUPED_INTERFACE)[0] == "estop"
    assert isinstance(link.sent[-1], P.Estop)
    assert _stop(link, False, True, bad, safety, QUADRUPED_INTERFACE)[0].startswith("none")


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"rate_hz": 0}, "rate_hz"), ({"duration_s": -1}, "duration_s"),
     ({"command": (0.5, 0.0)}, "command"), ({"reply_timeout_s": 0.0}, "reply_timeout_s"),
     ({"spin_s": -0.001}, "spin_s"), ({"hello_attempts": 0}, "hello_attempts"),
     ({"command_max_rate": (1.0, 0.0, 2.0)}, "command_max_rate")],
)
def test_loop_config_names_the_bad_setting(kw, match):
    with pytest.raises(ValueError, match=match):
        LoopConfig(**kw)


class _StopLink:
    """A robot link whose stop calls go through ``on_stop`` first (to inject what happens)."""

    kind, port, last_rtt_s = "fake", "fake", 0.0

    def __init__(self, on_stop):
        self.on_stop, self.calls = on_stop, 0

    def _stop(self):
        self.calls += 1
        self.on_stop(self.calls)
        q = np.zeros(12, dtype=np.float32)
        return P.State(1, 0, 0, q, q, [1, 0, 0, 0], [0, 0, 0], [0, 0, 9.81])

    def passive(self, target_rad, timeout_s):
        return self._stop()

    def estop(self, timeout_s):
        return self._stop()

    def connect(self, attempts=3):
        raise NotImplementedError

    read = command = connect

    def stats_dict(self):
        return {}

    def close(self):
        pass


def test_a_link_error_while_stopping_is_retried_unless_the_port_is_gone():
    """S1: only a lost port ends the stop at once; any other link error (a busy port) retries,
    and a port that is gone is reported with the link's own note (STS: no watchdog)."""
    from deploy.link import LinkError

    def busy_once(calls):
        if calls == 1:
            raise LinkError("sync write failed: [TxRxResult] Port is in use!")

    link = _StopLink(busy_once)
    assert _stop(link, True, False, None, None, QUADRUPED_INTERFACE)[0] == "passive"
    assert link.calls == 2

    def lost(calls):
        raise LinkError("port vanished", port_lost=True)

    link = _StopLink(lost)
    link.port_lost_note = "none (bus adapter gone: no link watchdog)"
    assert _stop(link, True, False, None, None, QUADRUPED_INTERFACE)[0] == link.port_lost_note
    assert link.calls == 1
    link = _StopLink(lambda calls: (_ for _ in ()).throw(LinkError("busy")))
    link.stop_unconfirmed_note = "; no watchdog"
    assert _stop(link, True, False, None, None, QUADRUPED_INTERFACE)[0] == (
        "passive sent, not confirmed (busy); no watchdog")
    assert link.calls == 3


def test_a_fixed_command_reaches_the_policy_from_the_first_step(fixed_command_policy):
    """C1: a policy trained on fixed_command 0.5,0,0 sees 0.5 from the first run step (its
    normalizer std for the command entries is ~1e-4: a ramp from zero is far out of range)."""
    from deploy.commands import FixedCommand
    from deploy.sim.virtual_robot import InProcessLink

    cfg = LoopConfig(rate_hz=50, duration_s=0.2, safety=SafetyConfig(ramp_s=0.1, hold_s=0.1))
    res = run_deploy(InProcessLink(), OnnxPolicy(fixed_command_policy), cfg,
                     commands=FixedCommand((0.5, 0.0, 0.0)))
    assert res.ok, res.stop_reason
    run = res.log["phase"] == Phase.RUN
    assert run.sum() >= 1  # how many of the 10 periods ran is the machine's load
    np.testing.assert_array_equal(res.log["command"][run], [[0.5, 0.0, 0.0]] * int(run.sum()))
    np.testing.assert_array_equal(res.log["obs"][run][:, 42:], res.log["command"][run])
    assert res.summary["command_rate_limited_steps"] == 0


class _DrainedSource:
    """A command source that records its polls and resyncs."""

    name = "recording"

    def __init__(self):
        self.events: list = []
        self.polls: list[float] = []
        self.resynced_after = None

    def poll(self, t_s):
        self.polls.append(t_s)
        return np.array([0.2, 0.0, 0.0])

    def resync(self):
        self.resynced_after = len(self.polls)

    def close(self):
        pass


def test_live_sources_are_drained_during_ramp_and_hold_and_resynced_at_the_run(standing_policy):
    """S3: the source is polled during ramp and hold too (gamepad events and key bytes do not
    pile up), its command reaches no policy there, and it is resynced before the run's first
    poll."""
    from deploy.sim.virtual_robot import InProcessLink

    source = _DrainedSource()
    cfg = LoopConfig(rate_hz=50, duration_s=0.2, safety=SafetyConfig(ramp_s=0.1, hold_s=0.1))
    res = run_deploy(InProcessLink(), OnnxPolicy(standing_policy), cfg, commands=source)
    assert res.ok, res.stop_reason
    phase = res.log["phase"]
    before = int((phase != Phase.RUN).sum())
    assert len(source.polls) == len(phase)  # one poll per step, every phase
    assert all(t < 0 for t in source.polls[:before]) and source.polls[before] >= 0
    assert source.resynced_after == before
    assert np.isnan(res.log["command"][phase != Phase.RUN]).all()
    np.testing.assert_allclose(res.log["command"][phase == Phase.RUN][0], [0.02, 0, 0])


@pytest.fixture(scope="module")
def clock_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A standing policy trained (says its metadata) with a 3 Hz gait clock: 47 inputs."""
    from deploy_test_helpers import make_standing_policy

    from envs.interface import with_gait_clock

    return make_standing_policy(tmp_path_factory.mktemp("clock") / "clock.onnx",
                                interface_dict=with_gait_clock(QUADRUPED_INTERFACE).to_dict(),
                                env_kwargs={"gait_frequency_hz": 3.0})


def test_a_gait_clock_policy_sees_the_envs_clock_from_the_first_run_step(clock_policy):
    """The loop computes the clock as the env does: phase 0 at the first run step (the env's
    reset), then f * period per control period (skipped periods included)."""
    from envs.interface import gait_clock, gait_phase

    res = _run_in_process(OnnxPolicy(clock_policy), duration_s=0.4)
    assert res.ok, res.stop_reason
    run = res.log["phase"] == Phase.RUN
    clock = res.log["obs"][run][:, 45:47]
    assert len(clock) >= 2  # of 20 periods; skipped ones are what the ticks below allow for
    np.testing.assert_allclose(clock[0], gait_clock(0.0), atol=1e-7)
    # Each period advances the phase by 3 Hz * 0.02 s = 0.06 cycles; a skipped period by more.
    phase = np.mod(np.arctan2(clock[:, 0], clock[:, 1]) / (2 * np.pi), 1.0)
    ticks = np.round(np.mod(np.diff(phase), 1.0) / 0.06)
    assert (ticks >= 1).all()
    np.testing.assert_allclose(np.mod(np.diff(phase), 1.0), 0.06 * ticks, atol=1e-6)
    k = np.concatenate([[0], np.cumsum(ticks)]).astype(int)
    expected = np.array([gait_clock(gait_phase(int(i), 3.0, 0.02)) for i in k])
    np.testing.assert_allclose(clock, expected, atol=1e-6)
    # The rest of the observation is the clock-free layout, as for any policy.
    assert np.isfinite(res.log["obs"][run][:, :45]).all()


@pytest.mark.parametrize("stands", [False, True])
@pytest.mark.parametrize("command", [(0.0, 0.0, 0.0), (0.3, 0.0, 0.0)])
def test_the_loop_stands_the_clock_as_the_env_does(clock_policy, stands, command):
    """``gait_clock_stands`` in the metadata (issue 26): at a standing command the loop's clock
    block is (0, 0), as the env's; at a moving one, or for a policy without the key (every
    policy exported before it), the running phase. The same observation function decides in
    both, from the command the policy sees."""
    from deploy.commands import FixedCommand
    from deploy.sim.virtual_robot import InProcessLink
    from envs.interface import gait_clock, gait_phase

    policy = OnnxPolicy(clock_policy)
    if stands:
        policy.metadata = {**policy.metadata, "env_kwargs": {
            **policy.metadata["env_kwargs"], "gait_clock_stands": True}}

    cfg = LoopConfig(rate_hz=50, duration_s=0.3, safety=SafetyConfig(ramp_s=0.1, hold_s=0.1))
    res = run_deploy(InProcessLink(), policy, cfg, commands=FixedCommand(command))
    assert res.ok, res.stop_reason
    run = res.log["phase"] == Phase.RUN
    np.testing.assert_allclose(res.log["command"][run][0], command)
    clock = res.log["obs"][run][:, 45:47]
    assert len(clock) >= 2
    if stands and command == (0.0, 0.0, 0.0):
        np.testing.assert_array_equal(clock, np.zeros_like(clock))
    else:
        np.testing.assert_allclose(clock[0], gait_clock(gait_phase(0, 3.0, 0.02)), atol=1e-7)
        np.testing.assert_allclose(np.linalg.norm(clock, axis=1), 1.0, atol=1e-6)


def test_a_gait_clock_layout_without_a_frequency_is_refused_before_connecting(clock_policy):
    from deploy.sim.virtual_robot import InProcessLink

    policy = OnnxPolicy(clock_policy)
    policy.metadata = {**policy.metadata, "env_kwargs": {}}
    link = InProcessLink()
    with pytest.raises(PolicyMismatchError, match="gait clock.*gait_frequency_hz.*re-export"):
        run_deploy(link, policy, _config(duration_s=0.2))
    assert link.robot.snapshot()["position_commands"] == 0


def test_policy_robot_interface():
    from deploy.loop import policy_robot_interface
    from envs.interface import QUADRUPED_OBS_LAYOUT_CLOCK, with_gait_clock

    clock_itf = with_gait_clock(QUADRUPED_INTERFACE)
    assert clock_itf.obs_layout == QUADRUPED_OBS_LAYOUT_CLOCK and clock_itf.obs_layout.dim == 47
    assert policy_robot_interface(QUADRUPED_INTERFACE, QUADRUPED_INTERFACE, None, "p") is (
        QUADRUPED_INTERFACE)
    assert policy_robot_interface(QUADRUPED_INTERFACE, clock_itf, 3.0, "p") == clock_itf
    with pytest.raises(PolicyMismatchError, match="no gait clock but .*gait_frequency_hz=3.0"):
        policy_robot_interface(QUADRUPED_INTERFACE, QUADRUPED_INTERFACE, 3.0, "p")


class _MarkedReadLink:
    """The in-process stepped robot, with every READ's joint positions shifted by ``MARK`` rad
    (so an observation tells which STATE it was built from) and a log of the calls; READ number
    ``drop_read`` gets no reply and READ number ``fault_read`` a link fault."""

    MARK = 0.01

    def __init__(self, drop_read: int | None = None, fault_read: int | None = None):
        from deploy.sim.virtual_robot import InProcessLink

        self.inner, self.calls = InProcessLink(), []
        self.drop_read, self.fault_read = drop_read, fault_read
        self.command_q: list[np.ndarray] = []  # joint positions of each COMMAND's STATE

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read(self, timeout_s):
        self.calls.append("read")
        n_reads = self.calls.count("read")
        if n_reads == self.drop_read:
            return None
        if n_reads == self.fault_read:
            from deploy.robot_link import LinkFault

            return LinkFault(Fault.LINK_LOST, "test: the READ's reply is lost")
        reply = self.inner.read(timeout_s)
        reply.q_rad = (reply.q_rad + self.MARK).astype(np.float32)
        return reply

    def command(self, target_rad, timeout_s):
        self.calls.append("command")
        reply = self.inner.command(target_rad, timeout_s)
        self.command_q.append(reply.q_rad.copy())
        return reply


def _joint_pos_obs(log) -> np.ndarray:
    """The joint positions [rad] each run-phase observation was built from."""
    run = log["phase"] == Phase.RUN
    return log["obs"][run][:, 6:18].astype(np.float64) + QUADRUPED_INTERFACE.arrays()[
        "default_pose_rad"]


def test_the_observation_is_built_from_a_state_read_at_the_deadline(standing_policy):
    """fresh_state: each run step READs the state and observes it, not the STATE that answered
    the previous period's COMMAND (sampled a period earlier: the env's action latency 1)."""
    cfg = LoopConfig(rate_hz=50, duration_s=0.3,
                     safety=SafetyConfig(ramp_s=0.1, hold_s=0.1, lower_s=0.0))
    link = _MarkedReadLink()
    res = run_deploy(link, OnnxPolicy(standing_policy), cfg)
    assert res.ok, res.stop_reason
    n_run = int(np.sum(res.log["phase"] == Phase.RUN))
    assert n_run >= 1  # of 15 periods: a busy machine skips some
    # READ then COMMAND each run step (ramp and hold send COMMANDs only; one READ at the start).
    run_calls = link.calls[link.calls.index("read", 1):]
    assert run_calls[: 2 * n_run] == ["read", "command"] * n_run
    assert res.summary["state_reads"] == n_run and res.summary["stale_observations"] == 0
    # Stepped physics: the READ sees the state the last COMMAND left, plus the mark.
    n_before = len(link.command_q) - n_run
    prev_command_q = np.asarray(link.command_q[n_before - 1: -1], dtype=np.float64)
    np.testing.assert_allclose(_joint_pos_obs(res.log), prev_command_q + link.MARK, atol=1e-5)

    # Without it, the observation is the previous COMMAND's STATE and nothing is read.
    link = _MarkedReadLink()
    res = run_deploy(link, OnnxPolicy(standing_policy),
                     LoopConfig(**{**cfg.__dict__, "fresh_state": False}))
    assert res.ok and res.summary["state_reads"] == 0 and link.calls.count("read") == 1
    n_run = int(np.sum(res.log["phase"] == Phase.RUN))  # this run's: it may skip other periods
    prev_command_q = np.asarray(link.command_q[len(link.command_q) - n_run - 1: -1])
    np.testing.assert_allclose(_joint_pos_obs(res.log), prev_command_q, atol=1e-6)


def test_a_lost_read_falls_back_to_the_last_state_and_a_read_fault_stops(standing_policy):
    cfg = LoopConfig(rate_hz=50, duration_s=0.3,
                     safety=SafetyConfig(ramp_s=0.1, hold_s=0.1, lower_s=0.0))
    link = _MarkedReadLink(drop_read=5)  # READ 1 is the start pose; 5 is the 4th run step's
    res = run_deploy(link, OnnxPolicy(standing_policy), cfg)
    assert res.ok, res.stop_reason
    assert res.summary["stale_observations"] == 1
    q = _joint_pos_obs(res.log)
    n_before = len(link.command_q) - len(q)
    # Step 3 (0-based) observed the STATE of the COMMAND before it, unmarked; its neighbours
    # the marked READs.
    np.testing.assert_allclose(q[3], link.command_q[n_before + 2], atol=1e-6)
    np.testing.assert_allclose(q[2], np.asarray(link.command_q[n_before + 1]) + link.MARK,
                               atol=1e-5)

    link = _MarkedReadLink(fault_read=5)
    res = run_deploy(link, OnnxPolicy(standing_policy), cfg)
    assert res.fault == Fault.LINK_LOST and "READ's reply is lost" in res.stop_reason
    assert res.stopped_with == "estop"


def test_the_first_ramp_target_is_one_rate_limit_step_from_a_hanging_leg(tmp_path):
    """Issue 22 hole 1: on the stand, legs hanging 0.6 rad off the default pose (outside the
    policy's +-0.3 rad bounds), the first RAMP target is the measured pose to within one
    rate-limit step, and no step of the whole run is larger (before: the bound, 0.3 rad away)."""
    import mujoco
    from deploy_test_helpers import make_standing_policy

    from deploy.sim.virtual_robot import InProcessLink, VirtualRobot

    arr = QUADRUPED_INTERFACE.arrays()
    policy = OnnxPolicy(make_standing_policy(tmp_path / "narrow.onnx", action_half_range_rad=0.3))
    robot = VirtualRobot(mode="stepped")
    q0 = np.clip(arr["default_pose_rad"] - 0.6, arr["joint_low_rad"], arr["joint_high_rad"])
    robot.sim.data.qpos[robot.sim.joint_qpos_adr] = q0 - np.pi  # servo angle = joint + pi
    mujoco.mj_forward(robot.sim.model, robot.sim.data)
    max_rate = 2.0  # 0.04 rad per 20 ms step, as in the reproduction
    cfg = LoopConfig(rate_hz=50, duration_s=0.4,
                     safety=SafetyConfig(max_rate_rad_s=max_rate, ramp_s=0.3, hold_s=0.1))
    res = run_deploy(InProcessLink(robot), policy, cfg)
    assert res.ok, res.stop_reason
    target = res.log["target"].astype(np.float64)
    step = max_rate / 50 + 1e-5  # float32 wire rounding of angles O(1..6) rad: < 1e-6
    assert res.log["phase"][0] == Phase.RAMP
    assert np.abs(target[0] - q0).max() <= step, np.abs(target[0] - q0).max()
    assert np.abs(np.diff(target, axis=0)).max() <= step
    # In the run phase the targets come from the policy, inside its bounds once reached.
    lo, hi = policy.safe_bounds(InProcessLink(VirtualRobot(mode="stepped")).connect())
    assert (target[-1] >= lo - 1e-6).all() and (target[-1] <= hi + 1e-6).all()


def _lying_robot():
    """A stepped virtual robot that starts as a real one rests at power-on: torque off, body on
    the floor, legs folded under it (1.5 s of passive physics from the standing reset)."""
    from deploy.sim.virtual_robot import VirtualRobot

    robot = VirtualRobot(mode="stepped")
    robot.sim.step_physics(int(1.5 / robot.sim.model.opt.timestep))
    robot.sim.forward()
    return robot


def test_the_stop_lowers_the_body_to_where_it_started_then_releases(tmp_path, standing_policy):
    """Issue 22: at the end of a run (the bus works) the body is lowered to the pose it started
    in over lower_s, then torque is released: the last position targets end at that pose, the
    body is near the floor before the release, and the summary says which stop was taken."""
    from deploy.sim.virtual_robot import InProcessLink

    robot = _lying_robot()
    q_rest = robot.sim.sensors().q_servo_rad.copy()
    h_rest = robot.sim.body_height_m
    cfg = LoopConfig(rate_hz=50, duration_s=0.5,
                     safety=SafetyConfig(ramp_s=0.6, hold_s=0.3, lower_s=0.6))
    res = run_deploy(InProcessLink(robot), OnnxPolicy(standing_policy), cfg)
    assert res.ok and res.stopped_with == "passive", res.stop_reason
    assert res.summary["lowering"] == "lowered to the rest pose in 0.60 s (30 periods), released"
    rec = robot.record
    # Every logged step sent one position COMMAND; the lowering sent 30 more, then one passive.
    assert rec.position_commands == len(res.log["t_s"]) + 30 and rec.passive_commands == 1
    assert robot.sim.body_height_m < h_rest + 0.03  # down where it lay (it stood ~0.1 m higher)
    # The last target is the rest pose as measured (float32 on the wire: < 1e-6 rad off).
    assert np.abs(robot.sim.ctrl_servo_rad - q_rest).max() < 1e-5


def test_a_fault_that_leaves_the_bus_working_lowers_first_others_release_at_once(
        virtual_robot, standing_policy):
    """Issue 22: a NaN action (the bus works) lowers the body, then ESTOP; a servo fault reported
    by the controller releases at once (ESTOP, no lowering COMMAND)."""
    from deploy.sim.virtual_robot import InProcessLink

    class NanAfter:
        def __init__(self, policy, n):
            self.policy, self.n, self.calls = policy, n, 0

        def __getattr__(self, name):
            return getattr(self.policy, name)

        def __call__(self, obs):
            self.calls += 1
            a = self.policy(obs)
            return a * np.nan if self.calls > self.n else a

    robot = _lying_robot()
    cfg = LoopConfig(rate_hz=50, duration_s=2.0,
                     safety=SafetyConfig(ramp_s=0.4, hold_s=0.2, lower_s=0.4))
    res = run_deploy(InProcessLink(robot), NanAfter(OnnxPolicy(standing_policy), 3 + 10), cfg)
    assert res.fault is Fault.NON_FINITE_ACTION and res.stopped_with == "estop"
    assert res.summary["lowering"].startswith("lowered to the rest pose in 0.40 s")
    assert robot.record.position_commands == len(res.log["t_s"]) - 1 + 20  # NaN step: none sent

    robot = virtual_robot("--servo-fault-after-s", "0.8")
    with SerialLink(robot.port) as link:
        res = run_deploy(link, OnnxPolicy(standing_policy), _config())
    rec = robot.stop()
    assert res.fault is Fault.SERVO_FAULT and res.stopped_with == "estop"
    assert res.summary["lowering"].startswith("released at once (SERVO_FAULT")
    assert rec["position_commands"] == int(np.sum(res.log["reply"] == 0)) + int(
        np.sum(res.log["reply"] != 0))  # only the loop's own COMMANDs: nothing after the fault
