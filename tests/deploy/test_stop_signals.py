"""Every stop signal stops the robot, and no second signal can skip the stop (issues 22, 27).

SIGINT (Ctrl-C), SIGTERM, SIGHUP (the operator's SSH session dropped) and SIGQUIT end a deploy
run through the same path: the stop is sent and confirmed, then the log and the summary are
written. A signal only *requests* the stop (``deploy.loop.StopSignals``): a handler that raised
could land between the loop's exception and the stop and skip it.
"""

from __future__ import annotations

import inspect
import json
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from deploy_test_helpers import ROOT
from test_light_deps import BLOCKER

from deploy import protocol as P
from deploy.loop import LoopConfig, StopSignals, run_deploy
from deploy.policy import OnnxPolicy
from deploy.safety import SafetyConfig
from envs.interface import QUADRUPED_INTERFACE

_ARR = QUADRUPED_INTERFACE.arrays()
_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def _default_stop_signals() -> None:
    """The stop signals as a terminal gives them. A shell's background job (``cmd &``, as CI or
    a test runner may start pytest) inherits SIGINT and SIGQUIT ignored, and StopSignals leaves
    an ignored signal ignored (``nohup`` is the user's choice)."""
    for name in _STOP_SIGNALS:
        sig = getattr(signal, name)
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL)


@pytest.fixture(autouse=True)
def _stop_signals_not_ignored():
    """This process's stop signals not ignored during each test, as before it afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {name: signal.getsignal(getattr(signal, name)) for name in _STOP_SIGNALS}
    _default_stop_signals()
    yield
    for name, handler in before.items():
        signal.signal(getattr(signal, name), handler)


class _FastLink:
    """A robot that answers at once, standing at the default pose; counts the stop frames."""

    kind, port, last_rtt_s = "fake", "fake", 0.0

    def __init__(self):
        self.stops = 0

    def _state(self):
        q = _ARR["default_pose_rad"].astype(np.float32)
        return P.State(1, 0, int(P.Status.ARMED), q, np.zeros(12, np.float32), [1, 0, 0, 0],
                       [0, 0, 0], [0, 0, 9.81])

    def connect(self, attempts=3):
        return P.Info(1, 1, 1, 100, _ARR["joint_low_rad"], _ARR["joint_high_rad"])

    def read(self, timeout_s):
        return self._state()

    def command(self, target_rad, timeout_s):
        return self._state()

    def passive(self, target_rad, timeout_s):
        self.stops += 1
        return self._state()

    def estop(self, timeout_s):
        self.stops += 1
        return self._state()

    def stats_dict(self):
        return {}

    def close(self):
        pass


LOOP_FILE = sys.modules["deploy.loop"].__file__
# The deadline clock's spin and the log's bookkeeping run thousands of lines a period and hold
# no stop logic; the sweep covers the rest of the module (run_deploy, the stop, the guard).
UNTRACED = {"wait", "add", "_pct"}


def _restore_line() -> float:
    """Line of run_deploy's ``stop_signals.restore()``: after it the run has stopped the robot
    and written its log and summary, and the caller's own handlers are back."""
    lines, start = inspect.getsourcelines(run_deploy)
    for i, line in enumerate(lines):
        if line.strip() == "stop_signals.restore()":
            return start + i
    return float("inf")  # no such guard: no line is after it


def _run_with_second_signal(policy: OnnxPolicy, second_at: int | None):
    """Ctrl-C in the 2nd control period; a second Ctrl-C at the ``second_at``-th line of
    ``deploy/loop.py`` executed after the first (outside :data:`UNTRACED`). Returns (the result
    or the exception that escaped, the stop frames the robot got, the ``(function, line)`` of
    each line executed after the first signal)."""
    link = _FastLink()
    lines_after: list[tuple[str, int]] = []
    first_sent = False

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != LOOP_FILE or frame.f_code.co_name in UNTRACED:
            return None
        if event == "line" and first_sent:
            lines_after.append((frame.f_code.co_name, frame.f_lineno))
            if len(lines_after) == second_at:
                signal.raise_signal(signal.SIGINT)  # the handler runs before this returns
        return tracer

    def on_step(k, phase):
        nonlocal first_sent
        if k == 1 and not first_sent:
            first_sent = True
            signal.raise_signal(signal.SIGINT)

    cfg = LoopConfig(rate_hz=200, duration_s=5.0,
                     safety=SafetyConfig(ramp_s=0.0, hold_s=0.0, lower_s=0.02))
    sys.settrace(tracer)
    try:
        result: object = run_deploy(link, policy, cfg, on_step=on_step)
    except BaseException as exc:  # noqa: BLE001 - what escaped is the finding
        result = exc
    finally:
        sys.settrace(None)
    return result, link.stops, lines_after


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers need the main thread")
def test_a_second_ctrl_c_at_any_line_after_the_first_still_gets_the_stop_sent(standing_policy,
                                                                           monkeypatch):
    """Issue 27: the second Ctrl-C is injected at each line of the loop module that runs after
    the first (the except clauses, the ``finally:``, the stop, the summary), deterministically:
    the stop is sent once and confirmed every time, and the run returns its result with its
    summary. Before the fix a Ctrl-C between the loop's exception and the handler swap escaped
    and skipped the stop (and one in the summary lost it)."""
    import gc
    import types

    # The loop's full collection before the run takes 0.2 s in a test process; the sweep runs
    # the loop ~130 times, and the collection holds no stop logic.
    fake_gc = types.SimpleNamespace(**{k: getattr(gc, k) for k in dir(gc) if not k.startswith("_")})
    fake_gc.collect = lambda *a: 0
    monkeypatch.setattr(sys.modules["deploy.loop"], "gc", fake_gc)
    policy = OnnxPolicy(standing_policy)
    previous = signal.getsignal(signal.SIGINT)
    result, stops, lines = _run_with_second_signal(policy, None)  # where the lines are
    assert stops == 1 and not isinstance(result, BaseException), result
    assert result.stop_reason == "interrupted by the operator (Ctrl-C)"
    first_seen = sorted({line: i for i, line in reversed(list(enumerate(lines)))}.values())
    assert len(first_seen) > 40  # the whole stop path is swept, not a line or two
    after_restore = _restore_line()
    for j in first_seen:
        result, stops, lines = _run_with_second_signal(policy, j + 1)
        where = lines[j] if j < len(lines) else "?"
        assert stops == 1, f"second Ctrl-C at {where}: {stops} stop frames"
        if isinstance(result, BaseException):  # only once the run is over (its handlers being
            # put back, the stop sent, the log and summary written) may it act
            over = where[0] == "restore" or (where[0] == "run_deploy" and where[1] > after_restore)
            assert isinstance(result, KeyboardInterrupt) and over, \
                f"second Ctrl-C at {where}: {result!r} escaped"
            continue
        assert result.stopped_with.startswith("passive"), (where, result.stopped_with)
        assert result.summary["stop_signal"] == "SIGINT" and result.summary["steps"] >= 1
    assert signal.getsignal(signal.SIGINT) is previous  # the handlers were put back


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"])
def test_a_second_signal_during_the_stop_waits_until_it_is_sent(signame):
    """A stop signal while the stop goes out is held back and noted; the stop is confirmed."""
    from test_loop import _StopLink

    from deploy.loop import _stop

    sig = getattr(signal, signame)
    previous = signal.getsignal(sig)
    link = _StopLink(lambda calls: signal.raise_signal(sig))  # in the main thread: handled now
    stopped = _stop(link, True, True, None, None, QUADRUPED_INTERFACE)[0]
    assert link.calls == 1
    assert stopped == f"estop; {signame} during the stop was held back until the stop was sent"
    assert signal.getsignal(sig) is previous


def test_stop_signals_record_hold_and_escape():
    guard = StopSignals()
    guard._on_signal(signal.SIGHUP, None)
    assert guard.requested == "SIGHUP"
    with pytest.raises(Exception, match="SIGHUP"):
        guard.check()
    guard._on_signal(signal.SIGINT, None)  # a repeat soon after: held, not raised
    guard.stopping = True
    guard.check()  # the stop has begun: no second request
    guard._on_signal(signal.SIGTERM, None)
    assert guard.notes() == [f"{n} during the stop was held back until the stop was sent"
                             for n in ("SIGINT", "SIGTERM")]
    hung = StopSignals()
    hung._on_signal(signal.SIGINT, None)
    hung._t_requested -= hung.escape_s + 1  # the loop never answered the first
    with pytest.raises(KeyboardInterrupt):
        hung._on_signal(signal.SIGINT, None)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGQUIT"])
def test_sigterm_sighup_and_sigquit_leave_sts_torque_confirmed_off(tmp_path, standing_policy,
                                                                   signame):
    """Issue 22 hole 2: ``deploy --virtual --link sts``, then the signal (SIGHUP: a dropped SSH
    session; STS servos have no watchdog). The stop is sent, torque reads back off on every
    servo, the summary is written and the exit status is 128 + the signal's number. Before the
    fix SIGHUP killed the process with torque on."""
    import time

    summary, report = tmp_path / "summary.json", tmp_path / "bus.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCKER, "--virtual", "--link", "sts", "--policy",
         str(standing_policy), "--duration-s", "60", "--ramp-s", "0.3", "--hold-s", "0.2",
         "--command", "0,0,0", "--summary", str(summary), "--log", str(tmp_path / "log.npz"),
         "--virtual-args", f"--report {report}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_stop_signals,  # the child as a terminal would start it
    )
    try:
        lines = []
        while not any(line.startswith("policy ") for line in lines):  # run_deploy is next
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        time.sleep(2.0)  # into the run phase (ramp and hold take 0.5 s)
        sig = getattr(signal, signame)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + out
    assert proc.returncode == 128 + sig, out + err
    assert f"stop: stopped by {signame}" in out and "robot left passive" in out, out + err
    s = json.loads(summary.read_text())
    assert s["stop_signal"] == signame and s["stopped_with"] == "passive" and s["steps"] >= 1
    bus = json.loads(report.read_text())
    assert not any(bus["torque_on"]) and bus["torque_off_events_s"]
    assert np.load(tmp_path / "log.npz")["t_s"].size >= 1
