"""Command sources and the command shaper (deploy/commands.py), alone and through the loop.

The keyboard is driven through a pty (key bytes written to the master side), the gamepad through
a fake evdev device, the loop through the in-process virtual robot (stepped physics).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import termios
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from deploy_test_helpers import ROOT

from deploy.commands import (
    ABS_RX,
    ABS_X,
    ABS_Y,
    ABS_Z,
    BTN_GAMEPAD,
    BTN_SOUTH,
    BTN_START,
    EV_ABS,
    EV_KEY,
    EV_SYN,
    SYN_DROPPED,
    SYN_REPORT,
    CommandShaper,
    CommandSourceError,
    FixedCommand,
    GamepadCommand,
    KeyboardCommand,
    LiveCommandRefused,
    ScheduleCommand,
    check_source_for_policy,
    command_ranges,
    open_gamepad,
    policy_command_ranges,
    refuse_live_commands,
)
from envs.interface import QUADRUPED_COMMAND_RANGES

# ---------------------------------------------------------------------------------------------
# Ranges


def test_command_ranges_match_the_env_and_merge_the_policy_ranges():
    from envs.quadruped import DEFAULT_COMMAND_RANGES

    assert QUADRUPED_COMMAND_RANGES is DEFAULT_COMMAND_RANGES  # one table for env and deploy
    low, high = command_ranges({})
    np.testing.assert_array_equal(low, [-0.3, -0.2, -1.0])
    np.testing.assert_array_equal(high, [0.6, 0.2, 1.0])
    low, high = command_ranges({"command_ranges": {"vx": [0.0, 1.0]}})
    np.testing.assert_array_equal(low, [0.0, -0.2, -1.0])
    np.testing.assert_array_equal(high, [1.0, 0.2, 1.0])
    with pytest.raises(ValueError, match="unknown key 'vz'"):
        command_ranges({"command_ranges": {"vz": [0, 1]}})
    # another robot's own ranges (its ONNX metadata's robot.command_ranges), under the policy's
    xl = {"vx": [-0.35, 0.7], "vy": [-0.2, 0.2], "yaw_rate": [-1.0, 1.0]}
    low, high = command_ranges({}, xl)
    np.testing.assert_array_equal(low, [-0.35, -0.2, -1.0])
    np.testing.assert_array_equal(high, [0.7, 0.2, 1.0])
    low, high = command_ranges({"command_ranges": {"vx": [0.0, 0.5]}}, xl)
    np.testing.assert_array_equal(low, [0.0, -0.2, -1.0])
    np.testing.assert_array_equal(high, [0.5, 0.2, 1.0])


def test_deploy_ranges_narrow_the_trained_ranges_and_must_lie_inside_them():
    """A policy trained to 0.5 m/s and exported with ``--deploy-range vx -0.3 0.4`` is clipped
    to 0.4 by deploy; a deploy range outside the trained one is refused with both named."""
    trained = {"command_ranges": {"vx": [-0.3, 0.5]}}
    low, high = command_ranges(trained, None, {"vx": [-0.3, 0.4]})
    np.testing.assert_array_equal(low, [-0.3, -0.2, -1.0])
    np.testing.assert_array_equal(high, [0.4, 0.2, 1.0])
    md = {"env_kwargs": trained,
          "deploy_command_ranges": {"vx": [-0.2, 0.4], "yaw_rate": [-0.5, 0.5]}}
    low, high = policy_command_ranges(md)
    np.testing.assert_array_equal(low, [-0.2, -0.2, -0.5])
    np.testing.assert_array_equal(high, [0.4, 0.2, 0.5])
    # without deploy ranges, the trained ones (robot's under the policy's)
    xl = {"vx": [-0.35, 0.7]}
    low, high = policy_command_ranges({"robot": {"command_ranges": xl}})
    np.testing.assert_array_equal(high, [0.7, 0.2, 1.0])
    for bad, match in (({"vx": [-0.3, 0.6]}, r"inside the trained range \[-0.3, 0.5\]"),
                       ({"vx": [0.4, 0.2]}, "low <= high"),
                       ({"vx": [0.0, float("nan")]}, "low <= high"),
                       ({"vx": "fast"}, "must be \\[low, high\\]"),
                       ({"vz": [0.0, 0.1]}, "unknown key 'vz'")):
        with pytest.raises(ValueError, match=match):
            command_ranges(trained, None, bad)
    # the shaper deploy builds from the metadata clips to the deploy range
    shaper = CommandShaper(*policy_command_ranges(
        {"env_kwargs": trained, "deploy_command_ranges": {"vx": [-0.3, 0.4]}}), 0.02,
        max_rate=(np.inf,) * 3, warn=lambda _text: None)
    np.testing.assert_allclose(shaper(np.array([0.5, 0.0, 0.0])), [0.4, 0.0, 0.0])


# ---------------------------------------------------------------------------------------------
# Keyboard through a pty


def _poll_until(kb: KeyboardCommand, want, timeout_s: float = 2.0) -> np.ndarray:
    """Poll (as the loop does, never blocking) until the command equals ``want``."""
    deadline = time.monotonic() + timeout_s
    while True:
        cmd = kb.poll(0.0)
        if np.allclose(cmd, want) or time.monotonic() > deadline:
            return cmd
        time.sleep(0.002)


def _returns(fn, *args, give_up_s: float = 10.0):
    """``fn(*args)`` run in a thread: its result, or a failure if it is still running after
    ``give_up_s`` (it blocked; the give-up only bounds the hang, it is no latency bound)."""
    import threading

    result = []
    thread = threading.Thread(target=lambda: result.append(fn(*args)), daemon=True)
    thread.start()
    thread.join(give_up_s)
    assert not thread.is_alive(), f"{fn.__qualname__} blocked"
    return result[0]


def _wait_readable(fd: int, give_up_s: float = 10.0) -> None:
    """Wait until ``fd`` has bytes to read (a pty delivers a write a moment later; the give-up
    only bounds a hang)."""
    import select

    assert select.select([fd], [], [], give_up_s)[0], "nothing arrived"


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def test_keyboard_keys_step_the_command_and_the_terminal_is_restored(pty_pair):
    master, slave = pty_pair
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ICANON and before[3] & termios.ECHO
    limits = command_ranges({})
    kb = KeyboardCommand(fd=slave, limits=limits, handle_sighup=False)
    try:
        mode = termios.tcgetattr(slave)
        assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO  # cbreak
        assert mode[3] & termios.ISIG  # Ctrl-C still interrupts
        # Never blocks: with nothing to read it returns zero; with a key there, one call reads
        # it and returns (it does not wait for more). Not a latency bound: a blocked call hangs.
        assert np.array_equal(_returns(kb.poll, 0.0), np.zeros(3))
        os.write(master, b"w")
        _wait_readable(slave)
        np.testing.assert_allclose(_returns(kb.poll, 0.0), [0.1, 0, 0])
        os.write(master, b"w")
        np.testing.assert_allclose(_poll_until(kb, [0.2, 0, 0]), [0.2, 0, 0])
        os.write(master, b"\x1b[A")  # up arrow
        np.testing.assert_allclose(_poll_until(kb, [0.3, 0, 0]), [0.3, 0, 0])
        os.write(master, b"\x1b[")  # an arrow split across two reads: read its first part
        _wait_readable(slave)
        np.testing.assert_allclose(_returns(kb.poll, 0.0), [0.3, 0, 0])
        os.write(master, b"B")
        np.testing.assert_allclose(_poll_until(kb, [0.2, 0, 0]), [0.2, 0, 0])
        os.write(master, b"aA\x1b[C")  # A twice (either case), right arrow once: +0.05
        np.testing.assert_allclose(_poll_until(kb, [0.2, 0.05, 0]), [0.2, 0.05, 0])
        os.write(master, b"qqe")
        np.testing.assert_allclose(_poll_until(kb, [0.2, 0.05, 0.2]), [0.2, 0.05, 0.2])
        os.write(master, b"\x1b[1;5A")  # Ctrl+up: ignored whole (its 'A' is not the A key)
        os.write(master, b"x")  # an unmapped key: ignored
        # Then a key that counts: once it is in, so are the two before it (in order), with
        # nothing of theirs (not a wait of a fixed time for something not to happen).
        os.write(master, b"e")
        np.testing.assert_allclose(_poll_until(kb, [0.2, 0.05, 0.0]), [0.2, 0.05, 0.0])
        os.write(master, b" ")  # space: stop
        np.testing.assert_allclose(_poll_until(kb, [0, 0, 0]), [0, 0, 0])
        os.write(master, b"w" * 10 + b"d" * 10)  # held keys stop at the trained ranges
        np.testing.assert_allclose(_poll_until(kb, [0.6, -0.2, 0]), [0.6, -0.2, 0])
        assert kb.events == [] and not kb.closed
    finally:
        kb.close()
    assert termios.tcgetattr(slave)[3] == before[3]  # restored
    kb.close()  # idempotent


def test_keyboard_arrow_presses_that_pile_up_are_not_misread():
    """Keyboard: 22 left arrows (66 bytes) in one read; a cut to the last 64 bytes left an orphan
    'D' that read as the d key (the other way). An escape sequence without a final byte is dropped
    whole, not read as keys."""
    r, w = os.pipe()
    kb = KeyboardCommand(fd=r, handle_sighup=False)
    try:
        os.write(w, b"\x1b[D" * 22)
        np.testing.assert_allclose(kb.poll(0.0), [0, 22 * 0.05, 0])
        os.write(w, b"\x1b[" + b"1;" * 10)  # never ends
        kb.poll(0.1)
        os.write(w, b"w")
        np.testing.assert_allclose(kb.poll(0.2), [0.1, 22 * 0.05, 0])
    finally:
        kb.close()
        os.close(r)
        os.close(w)


def test_keyboard_closed_terminal_means_stand_still(pty_pair):
    master, slave = pty_pair
    kb = KeyboardCommand(fd=slave, handle_sighup=False)
    os.write(master, b"www")
    np.testing.assert_allclose(_poll_until(kb, [0.3, 0, 0]), [0.3, 0, 0])
    os.close(master)  # the terminal goes away (EOF / EIO on the slave side)
    assert np.array_equal(kb.poll(1.5), np.zeros(3))  # zero, not the last command
    assert kb.closed and len(kb.events) == 1
    t_ev, text = kb.events[0]
    assert t_ev == 1.5 and "standing still (zero command)" in text
    assert np.array_equal(kb.poll(2.0), np.zeros(3)) and len(kb.events) == 1
    kb.close()  # the terminal is gone: restoring it must not raise


def test_keyboard_end_of_file_on_a_pipe_means_stand_still():
    r, w = os.pipe()
    try:
        kb = KeyboardCommand(fd=r, handle_sighup=False)
        assert not kb.is_tty
        os.write(w, b"ww")
        np.testing.assert_allclose(_poll_until(kb, [0.2, 0, 0]), [0.2, 0, 0])
        os.close(w)
        assert np.array_equal(kb.poll(0.3), np.zeros(3))
        assert kb.closed and "end of input" in kb.events[0][1]
    finally:
        os.close(r)


def test_keyboard_sighup_means_stand_still(pty_pair):
    master, slave = pty_pair
    previous = signal.getsignal(signal.SIGHUP)
    kb = KeyboardCommand(fd=slave)
    try:
        os.write(master, b"q")
        np.testing.assert_allclose(_poll_until(kb, [0, 0, 0.2]), [0, 0, 0.2])
        os.kill(os.getpid(), signal.SIGHUP)  # the SSH session drops
        assert np.array_equal(kb.poll(0.7), np.zeros(3))
        assert kb.closed and "SIGHUP" in kb.events[0][1]
    finally:
        kb.close()
    assert signal.getsignal(signal.SIGHUP) == previous


# ---------------------------------------------------------------------------------------------
# Schedule files


def test_schedule_csv_is_piecewise_constant(tmp_path):
    path = tmp_path / "demo.csv"
    path.write_text("# walk, turn, stop\n"
                    "t_s, vx, vy, yaw_rate\n"
                    "0.5, 0.3, 0, 0\n"
                    "\n"
                    "2.0, 0.3, 0.0, 0.5\n"
                    "3.0, 0, 0, 0\n")
    s = ScheduleCommand(path)
    assert s.duration_s == 3.0 and "schedule" in s.name
    expect = {0.0: [0, 0, 0], 0.49: [0, 0, 0], 0.5: [0.3, 0, 0], 1.99: [0.3, 0, 0],
              2.0: [0.3, 0, 0.5], 2.5: [0.3, 0, 0.5], 3.0: [0, 0, 0], 100.0: [0, 0, 0]}
    for t, want in expect.items():
        np.testing.assert_array_equal(s.poll(t), want, err_msg=f"t={t}")


def test_schedule_json_and_yaml(tmp_path):
    (tmp_path / "a.json").write_text('[[0, 0.2, 0, 0], {"t_s": 1, "vx": 0, "vy": 0.1, '
                                     '"yaw_rate": 0}]')
    s = ScheduleCommand(tmp_path / "a.json")
    np.testing.assert_array_equal(s.poll(0.5), [0.2, 0, 0])
    np.testing.assert_array_equal(s.poll(1.0), [0, 0.1, 0])
    pytest.importorskip("yaml")
    (tmp_path / "a.yaml").write_text("schedule:\n  - [0, 0.1, 0, 0]\n"
                                     "  - {t_s: 2, vx: 0, vy: 0, yaw_rate: -0.5}\n")
    s = ScheduleCommand(tmp_path / "a.yaml")
    np.testing.assert_array_equal(s.poll(1.9), [0.1, 0, 0])
    np.testing.assert_array_equal(s.poll(2.0), [0, 0, -0.5])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0, 0.1, 0, 0\n1, 0.2, 0\n", "line 2: expected four numbers"),
        ("0, 0.1, 0, 0\n0, 0.2, 0, 0\n", "strictly increasing"),
        ("-1, 0.1, 0, 0\n", ">= 0"),
        ("0, nan, 0, 0\n", "line 1: expected four numbers"),
        ("# nothing\n", "has no rows"),
    ],
)
def test_schedule_errors_name_the_row(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(CommandSourceError, match=message):
        ScheduleCommand(path)
    with pytest.raises(CommandSourceError, match="missing.csv"):
        ScheduleCommand(tmp_path / "missing.csv")


# ---------------------------------------------------------------------------------------------
# Shaper


def test_shaper_clips_with_one_warning_and_limits_the_rate():
    warnings: list[str] = []
    low, high = command_ranges({})
    shaper = CommandShaper(low, high, 0.02, max_rate=(1.0, 1.0, 2.0), warn=warnings.append)
    out = np.array([shaper(np.array([2.0, 0.0, -5.0])) for _ in range(60)])
    # Per period: at most 1 m/s^2 * 20 ms on vx, 2 rad/s^2 * 20 ms on the yaw rate.
    steps = np.abs(np.diff(np.vstack([np.zeros(3), out]), axis=0))
    assert steps[:, 0].max() == pytest.approx(0.02) and steps[:, 2].max() == pytest.approx(0.04)
    np.testing.assert_allclose(out[0], [0.02, 0, -0.04])
    np.testing.assert_allclose(out[-1], [0.6, 0.0, -1.0])  # clipped to vx <= 0.6, yaw >= -1
    assert len(warnings) == 1 and "outside the ranges the policy was trained on" in warnings[0]
    assert "vx [-0.3, 0.6]" in warnings[0]
    assert shaper.n_clipped == 60 and shaper.n_rate_limited == 29  # vx reaches 0.6 at step 30
    shaper(np.array([0.1, 0.3, 0.0]))  # another out-of-range command: no second warning
    assert len(warnings) == 1 and shaper.n_clipped == 61
    shaper(np.array([np.nan, 0, 0]))  # non-finite: zero, warned once
    assert len(warnings) == 2 and "non-finite" in warnings[1]


def test_shaper_within_ranges_is_silent_and_unlimited_rate_passes_through():
    warnings: list[str] = []
    shaper = CommandShaper.for_policy({}, 0.02, max_rate=(np.inf,) * 3, warn=warnings.append)
    np.testing.assert_array_equal(shaper(np.array([0.5, -0.1, 0.9])), [0.5, -0.1, 0.9])
    assert warnings == [] and shaper.n_clipped == 0 and shaper.n_rate_limited == 0


# ---------------------------------------------------------------------------------------------
# Fixed-command policies


def test_fixed_command_policy_refuses_live_sources(tmp_path):
    fixed = {"fixed_command": [0.5, 0.0, 0.0]}
    path = tmp_path / "s.csv"
    path.write_text("0, 0.1, 0, 0\n")
    with pytest.raises(LiveCommandRefused) as exc:
        check_source_for_policy(fixed, ScheduleCommand(path), "old.onnx")
    text = str(exc.value)
    assert "old.onnx was trained on one command only" in text
    assert "fixed_command = 0.5,0,0" in text and "recipes/quadruped_steer.yaml" in text
    assert "--command 0.5,0,0" in text
    # --command still works; it warns when it differs from the trained command.
    assert check_source_for_policy(fixed, FixedCommand((0.5, 0, 0))) == []
    (warning,) = check_source_for_policy(fixed, FixedCommand((0.2, 0, 0)), "old.onnx")
    assert "trained on the command 0.5,0,0 only" in warning and "--command 0.2,0,0" in warning
    # A policy trained on sampled commands takes any source.
    assert check_source_for_policy({}, ScheduleCommand(path)) == []
    assert check_source_for_policy({"fixed_command": None}, ScheduleCommand(path)) == []


def test_live_sources_are_refused_when_a_trained_range_excludes_zero(tmp_path):
    """S4: a live source stands still with zero; a range like vx [0.3, 0.6] would clip that
    zero up to walking at 0.3 m/s."""
    forward_only = {"command_ranges": {"vx": [0.3, 0.6]}}
    path = tmp_path / "s.csv"
    path.write_text("0, 0.4, 0, 0\n")
    with pytest.raises(LiveCommandRefused) as exc:
        check_source_for_policy(forward_only, ScheduleCommand(path), "fwd.onnx")
    text = str(exc.value)
    assert "fwd.onnx was trained on command ranges that exclude zero (vx [0.3, 0.6])" in text
    assert "--command VX,VY,YAW" in text
    with pytest.raises(LiveCommandRefused, match=r"yaw_rate \[-1, -0.5\]"):
        refuse_live_commands({"command_ranges": {"yaw_rate": [-1, -0.5]}}, "keyboard")
    assert check_source_for_policy(forward_only, FixedCommand((0.4, 0, 0))) == []
    # Ranges that include zero at an end are fine.
    refuse_live_commands({"command_ranges": {"vx": [0.0, 0.6]}}, "keyboard")


def test_a_standing_source_gives_an_exact_zero_never_clipped_into_a_range():
    """S4: a dead or stopped source's zero is not clipped up into a range that excludes 0."""
    warnings: list[str] = []
    shaper = CommandShaper(np.array([0.3, -0.2, -1.0]), np.array([0.6, 0.2, 1.0]), 0.02,
                           warn=warnings.append)
    shaper.start_at(np.array([0.5, 0.0, 0.0]))
    out = [shaper(np.zeros(3), stand=True) for _ in range(30)]
    np.testing.assert_allclose(out[0], [0.48, 0, 0])  # rate limited down ...
    np.testing.assert_array_equal(out[-1], [0.0, 0.0, 0.0])  # ... to exactly zero
    assert warnings == [] and shaper.n_clipped == 0
    pad = FakeGamepad()
    gp = GamepadCommand(pad, command_ranges({}))
    assert not gp.standing
    pad.press(BTN_SOUTH)
    gp.poll(0.0)
    assert gp.standing
    keyboard = KeyboardCommand(os.open(os.devnull, os.O_RDONLY), handle_sighup=False)
    try:
        assert not keyboard.standing
        keyboard.poll(0.0)  # end of input: the terminal is gone
        assert keyboard.standing
    finally:
        os.close(keyboard.fd)


# ---------------------------------------------------------------------------------------------
# Gamepad with a fake device

AbsInfo = namedtuple("AbsInfo", "value min max fuzz flat resolution")
Event = namedtuple("Event", "type code value")


class FakeGamepad:
    """What GamepadCommand uses of an ``evdev.InputDevice``: axes 0..255 resting at 128 unless
    ``ranges`` (code -> (min, max)) and ``rest`` (code -> value) say otherwise."""

    name, path = "Fake Pad", "/dev/input/event99"

    def __init__(self, axes=(ABS_X, ABS_Y, ABS_Z, ABS_RX), rest=None, ranges=None,
                 keys=(BTN_SOUTH, BTN_START)):
        self.axes, self.keys = axes, list(keys)
        self.ranges = dict(ranges or {})
        self.pending: list[Event] = []
        self.values: dict[int, int] = dict(rest or {})
        self.unplugged = False
        self.closed = False

    def capabilities(self):
        return {EV_KEY: self.keys, EV_ABS: [(c, self.absinfo(c)) for c in self.axes]}

    def absinfo(self, code):
        lo, hi = self.ranges.get(code, (0, 255))
        return AbsInfo(self.values.get(code, (lo + hi + 1) // 2), lo, hi, 0, 15, 0)

    def move(self, code, value):
        self.values[code] = value
        self.pending.append(Event(EV_ABS, code, value))

    def overflow(self, code, value):
        """The kernel's buffer overflowed: the move to ``value`` was lost, SYN_DROPPED instead
        (then the rest of that report, which must be ignored, and its SYN_REPORT)."""
        self.values[code] = value
        self.pending += [Event(EV_SYN, SYN_DROPPED, 0), Event(EV_ABS, code, 0),
                         Event(EV_SYN, SYN_REPORT, 0)]

    def press(self, code):
        self.pending += [Event(EV_KEY, code, 1), Event(EV_KEY, code, 0)]

    def read(self):
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        if not self.pending:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        events, self.pending = self.pending, []
        yield from events

    def close(self):
        self.closed = True


def test_gamepad_sticks_map_to_the_trained_ranges():
    pad = FakeGamepad()
    gp = GamepadCommand(pad, command_ranges({}))
    assert gp.yaw_axis == ABS_RX and "Fake Pad" in gp.name
    np.testing.assert_array_equal(gp.poll(0.0), [0, 0, 0])  # centred, nothing pending
    pad.move(ABS_Y, 0)  # left stick fully up: forward, the top of the vx range
    np.testing.assert_allclose(gp.poll(0.1), [0.6, 0, 0])
    pad.move(ABS_Y, 255)  # fully down: backward, the bottom of the range
    pad.move(ABS_X, 0)  # fully left: +vy
    pad.move(ABS_RX, 255)  # right stick right: turn right (negative yaw rate)
    np.testing.assert_allclose(gp.poll(0.2), [-0.3, 0.2, -1.0])
    pad.move(ABS_Y, 140)  # inside the dead zone
    pad.move(ABS_X, 128 - 70)  # about half left
    pad.move(ABS_RX, 128)
    cmd = gp.poll(0.3)
    assert cmd[0] == 0 and 0.05 < cmd[1] < 0.1 and cmd[2] == 0
    gp.close()
    assert pad.closed


def test_gamepad_stop_button_and_unplug_mean_stand_still():
    pad = FakeGamepad(axes=(ABS_X, ABS_Y, ABS_Z))  # no ABS_RX: yaw on ABS_Z
    gp = GamepadCommand(pad, command_ranges({}))
    assert gp.yaw_axis == ABS_Z
    pad.move(ABS_Y, 0)
    pad.move(ABS_Z, 0)
    np.testing.assert_allclose(gp.poll(0.0), [0.6, 0, 1.0])
    pad.press(BTN_SOUTH)  # stop, latched while the stick stays up
    np.testing.assert_array_equal(gp.poll(0.1), [0, 0, 0])
    np.testing.assert_array_equal(gp.poll(0.2), [0, 0, 0])
    pad.press(BTN_START)  # resume
    np.testing.assert_allclose(gp.poll(0.3), [0.6, 0, 1.0])
    pad.unplugged = True  # mid-run: read fails with ENODEV
    np.testing.assert_array_equal(gp.poll(4.25), [0, 0, 0])
    assert gp.dead
    t_ev, text = gp.events[-1]
    assert t_ev == 4.25 and "ENODEV" in text and "standing still (zero command)" in text
    pad.unplugged = False  # nothing is read from a dead gamepad again
    pad.move(ABS_Y, 0)
    np.testing.assert_array_equal(gp.poll(5.0), [0, 0, 0])
    gp.close()


def test_gamepad_rereads_the_sticks_after_the_kernel_dropped_events():
    """S3: on SYN_DROPPED (evdev buffer overflow, e.g. the stick's release lost) the rest of the
    report is ignored and every axis is read again: no stale forward command."""
    pad = FakeGamepad()
    gp = GamepadCommand(pad, command_ranges({}))
    pad.move(ABS_Y, 0)
    np.testing.assert_allclose(gp.poll(0.0), [0.6, 0, 0])
    pad.overflow(ABS_Y, 128)  # released, but the release event was dropped
    np.testing.assert_array_equal(gp.poll(0.1), [0, 0, 0])
    assert gp.resyncs == 1 and "SYN_DROPPED" in gp.events[-1][1]
    # A stick still held through the overflow is still meant: no hold mid-run.
    pad.move(ABS_X, 0)
    pad.overflow(ABS_X, 0)
    np.testing.assert_allclose(gp.poll(0.2), [0, 0.2, 0])
    assert gp.resyncs == 2 and not gp.standing


def test_gamepad_yaw_is_never_read_from_a_trigger():
    """A trigger (one-sided range, resting at its minimum) would read as a full yaw command
    with the stick idle: ABS_RX is the trigger on a DualShock behind the generic HID driver
    (right stick on ABS_Z), ABS_Z the trigger on xpad pads (right stick on ABS_RX)."""
    # Generic HID DualShock: everything on 0..255, ABS_RX resting at 0 (trigger).
    pad = FakeGamepad(rest={ABS_RX: 0})
    gp = GamepadCommand(pad, command_ranges({}))
    assert gp.yaw_axis == ABS_Z and gp.triggers == [ABS_RX]
    np.testing.assert_array_equal(gp.poll(0.0), [0, 0, 0])  # idle: no yaw (was +1 rad/s)
    pad.move(ABS_RX, 255)  # pulling the trigger does nothing
    np.testing.assert_array_equal(gp.poll(0.1), [0, 0, 0])
    pad.move(ABS_Z, 0)  # right stick left: turn left
    np.testing.assert_allclose(gp.poll(0.2), [0, 0, 1.0])
    # xpad: sticks on -32768..32767 resting at 0, right stick on ABS_RX, trigger on ABS_Z.
    stick = (-32768, 32767)
    pad = FakeGamepad(ranges={ABS_X: stick, ABS_Y: stick, ABS_RX: stick, ABS_Z: (0, 1023)},
                      rest={ABS_X: 0, ABS_Y: 0, ABS_RX: 0, ABS_Z: 0})
    gp = GamepadCommand(pad, command_ranges({}))
    assert gp.yaw_axis == ABS_RX and gp.triggers == []
    # A pad whose only candidates are triggers: no yaw, said at open.
    pad = FakeGamepad(axes=(ABS_X, ABS_Y, ABS_Z), rest={ABS_Z: 0})
    gp = GamepadCommand(pad, command_ranges({}))
    assert gp.yaw_axis is None and gp.triggers == [ABS_Z]
    assert "ABS_Z rests at its minimum (a trigger)" in gp.events[0][1]
    np.testing.assert_array_equal(gp.poll(0.0), [0, 0, 0])
    # A stick on a signed range read at its minimum is a held stick, not a trigger: refused.
    pad = FakeGamepad(ranges={ABS_X: stick, ABS_Y: stick, ABS_RX: stick},
                      rest={ABS_X: 0, ABS_Y: 0, ABS_RX: -32768}, axes=(ABS_X, ABS_Y, ABS_RX))
    with pytest.raises(CommandSourceError,
                       match=r"ABS_RX \(right stick, left/right\) reads -32768"):
        GamepadCommand(pad, command_ranges({}))


@pytest.mark.parametrize("code", [ABS_X, ABS_Y, ABS_RX])
def test_gamepad_refuses_to_open_with_a_stick_off_centre_naming_the_axis(code):
    pad = FakeGamepad(rest={code: 200})  # (200 - 127.5) / 127.5 = 0.57 of the half range
    name = {ABS_X: "ABS_X", ABS_Y: "ABS_Y", ABS_RX: "ABS_RX"}[code]
    with pytest.raises(CommandSourceError, match=rf"{name} \(.*\) reads 200 .* at open"):
        GamepadCommand(pad, command_ranges({}))
    # Inside the dead zone (0.1 of the half range, 12.75 counts) is centred.
    GamepadCommand(FakeGamepad(rest={code: 128 + 12}), command_ranges({}))


def test_gamepad_off_centre_at_the_start_of_the_run_holds_zero_until_centred():
    """The loop's resync at the start of the run phase: a stick pushed during ramp and hold
    does not start the robot; zero (standing) until every stick is back in the dead zone."""
    pad = FakeGamepad()
    gp = GamepadCommand(pad, command_ranges({}))
    pad.move(ABS_Y, 0)  # pushed fully forward during the hold ...
    gp.poll(-0.5)  # ... drained by the loop
    gp.resync()  # start of the run phase
    assert gp.held and gp.standing
    assert "ABS_Y (left stick, up/down) reads 0" in gp.events[-1][1]
    np.testing.assert_array_equal(gp.poll(0.0), [0, 0, 0])
    np.testing.assert_array_equal(gp.poll(0.5), [0, 0, 0])  # still held forward: still zero
    pad.move(ABS_Y, 130)  # back in the dead zone
    np.testing.assert_array_equal(gp.poll(1.0), [0, 0, 0])
    assert not gp.held and not gp.standing and "centred" in gp.events[-1][1]
    pad.move(ABS_Y, 0)  # now the stick steers
    np.testing.assert_allclose(gp.poll(1.5), [0.6, 0, 0])
    # Centred at the start of the run: nothing held.
    pad = FakeGamepad()
    gp = GamepadCommand(pad, command_ranges({}))
    gp.resync()
    assert not gp.held and gp.resyncs == 1


def test_gamepad_without_left_stick_is_refused():
    with pytest.raises(CommandSourceError, match="no left stick"):
        GamepadCommand(FakeGamepad(axes=(ABS_Z,)))


def test_gamepad_without_evdev_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "evdev", None)  # import evdev -> ImportError
    with pytest.raises(CommandSourceError, match=r"pip install 'robotac\[gamepad\]'"):
        open_gamepad(None)


class _FakeEvdev:
    """The part of the evdev module open_gamepad uses, over fake devices by path."""

    def __init__(self, devices):
        self.devices = devices

    def list_devices(self):
        return list(self.devices)

    def InputDevice(self, path):  # noqa: N802 - evdev's name
        return self.devices[path]


BTN_LEFT, BTN_TOOL_FINGER, BTN_TOUCH = 0x110, 0x145, 0x14A


def test_gamepad_auto_detect_needs_gamepad_buttons(monkeypatch):
    """A touchpad or touchscreen has ABS_X and ABS_Y and keys, but no gamepad button
    (BTN_SOUTH, alias BTN_GAMEPAD): auto-detect skips it."""
    touchpad = FakeGamepad(axes=(ABS_X, ABS_Y), keys=(BTN_LEFT, BTN_TOOL_FINGER, BTN_TOUCH))
    touchscreen = FakeGamepad(axes=(ABS_X, ABS_Y), keys=(BTN_TOUCH,))
    pad = FakeGamepad()
    monkeypatch.setitem(sys.modules, "evdev", _FakeEvdev({
        "/dev/input/event0": touchpad, "/dev/input/event1": touchscreen,
        "/dev/input/event2": pad}))
    gp = open_gamepad(None)
    assert gp.device is pad and touchpad.closed and touchscreen.closed and not pad.closed
    monkeypatch.setitem(sys.modules, "evdev", _FakeEvdev({
        "/dev/input/event0": FakeGamepad(axes=(ABS_X, ABS_Y), keys=(BTN_TOUCH,))}))
    with pytest.raises(CommandSourceError, match=r"no gamepad .*BTN_SOUTH"):
        open_gamepad(None)
    # The gamepad found, or given, is closed again when it is refused (a stick off centre).
    held = FakeGamepad(rest={ABS_X: 0})
    monkeypatch.setitem(sys.modules, "evdev", _FakeEvdev({"/dev/input/event3": held}))
    with pytest.raises(CommandSourceError, match="ABS_X"):
        open_gamepad("/dev/input/event3")
    assert held.closed


def test_gamepad_with_evdev_codes_and_a_missing_device():
    evdev = pytest.importorskip("evdev")
    e = evdev.ecodes
    assert (e.EV_KEY, e.EV_ABS, e.ABS_X, e.ABS_Y, e.ABS_Z, e.ABS_RX, e.BTN_SOUTH, e.BTN_START) == (
        EV_KEY, EV_ABS, ABS_X, ABS_Y, ABS_Z, ABS_RX, BTN_SOUTH, BTN_START)
    assert (e.BTN_GAMEPAD, e.BTN_LEFT, e.BTN_TOOL_FINGER, e.BTN_TOUCH) == (
        BTN_GAMEPAD, BTN_LEFT, BTN_TOOL_FINGER, BTN_TOUCH)
    with pytest.raises(CommandSourceError, match="cannot open '/dev/input/no-such-event'"):
        open_gamepad("/dev/input/no-such-event")


# ---------------------------------------------------------------------------------------------
# Through the loop (in-process virtual robot) and the CLI


def _run(policy_path: Path, commands=None, duration_s: float = 1.0, **kw):
    """The loop on the in-process stepped robot, on a virtual clock (:class:`VirtualTime`):
    every period runs, on its deadline, so the steps are the schedule's, not the machine's
    load (the real-time path: test_loop)."""
    from unittest import mock

    from deploy_test_helpers import VirtualTime

    import deploy.loop
    from deploy.loop import LoopConfig, run_deploy
    from deploy.policy import OnnxPolicy
    from deploy.safety import SafetyConfig
    from deploy.sim.virtual_robot import InProcessLink

    cfg = LoopConfig(rate_hz=50, duration_s=duration_s,
                     safety=SafetyConfig(ramp_s=0.1, hold_s=0.1), **kw)
    link = InProcessLink()
    with mock.patch.object(deploy.loop, "time", VirtualTime()):
        return run_deploy(link, OnnxPolicy(policy_path), cfg, commands=commands), link


def test_loop_follows_a_schedule_through_the_shaper(standing_policy, tmp_path):
    from deploy.loop import Phase

    path = tmp_path / "demo.csv"
    path.write_text("t_s,vx,vy,yaw_rate\n0,0,0,0\n0.2,0.4,0,0\n0.5,0.4,-0.1,0.8\n0.8,0,0,0\n")
    res, _ = _run(standing_policy, ScheduleCommand(path), log_path=tmp_path / "log.npz")
    assert res.ok, res.stop_reason
    log = dict(np.load(tmp_path / "log.npz"))
    run = log["phase"] == Phase.RUN
    cmd = log["command"][run]
    assert cmd.shape == (50, 3) and np.isnan(log["command"][~run]).all()  # every period ran
    np.testing.assert_array_equal(log["obs"][run][:, 42:45], cmd)  # what the policy saw
    # Replay: the schedule at each step's time since the run phase began, through a shaper.
    replay = CommandShaper.for_policy({}, 0.02)
    t_run = log["t_s"][run] - 0.2
    want = np.array([replay(ScheduleCommand(path).poll(t)) for t in t_run])
    np.testing.assert_allclose(cmd, want, atol=1e-6)
    assert np.abs(np.diff(cmd[:, 0])).max() <= 0.02 + 1e-6  # 1 m/s^2
    assert np.abs(np.diff(cmd[:, 2])).max() <= 0.04 + 1e-6  # 2 rad/s^2
    assert cmd[:, 0].max() == pytest.approx(0.4, abs=1e-6)  # reached the schedule's vx
    assert cmd[:, 2].max() > 0.5 and cmd[-1, 0] < 0.4  # turned, then slowed towards zero
    s = res.summary
    assert s["command_source"].startswith("schedule") and s["command_clipped_steps"] == 0
    assert s["command_shaping"]["ranges"]["vx"] == [-0.3, 0.6]
    assert str(log["command_source"]).startswith("schedule")


def test_loop_refuses_live_commands_for_a_fixed_command_policy(fixed_command_policy, tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("0, 0.1, 0, 0\n")
    with pytest.raises(LiveCommandRefused, match="fixed_command"):
        _run(fixed_command_policy, ScheduleCommand(path))
    # --command still runs, with a warning once since it is not the trained command.
    res, _ = _run(fixed_command_policy, duration_s=0.2, command=(0.9, 0.0, 0.0))
    assert res.ok
    w = res.summary["command_warnings"]
    assert len(w) == 2 and "trained on the command 0.5,0,0 only" in w[0]
    # Every one of the run's 10 steps had its command clipped.
    assert "outside the ranges" in w[1]
    assert res.summary["command_clipped_steps"] == res.summary["steps"] == 10


def test_cli_refuses_live_sources_and_missing_evdev(fixed_command_policy, standing_policy,
                                                    monkeypatch, capsys, tmp_path):
    from deploy.cli import main

    assert main(["--policy", str(fixed_command_policy), "--port", "/dev/null", "--keyboard"]) == 1
    err = capsys.readouterr().err
    assert "trained on one command only" in err and "quadruped_steer.yaml" in err
    monkeypatch.setitem(sys.modules, "evdev", None)
    assert main(["--policy", str(standing_policy), "--port", "/dev/null", "--gamepad"]) == 1
    assert "pip install 'robotac[gamepad]'" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("0, 1\n")
    assert main(["--policy", str(standing_policy), "--port", "/dev/null",
                 "--command-schedule", str(bad)]) == 1
    assert "line 1: expected four numbers" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one source only
        main(["--policy", str(standing_policy), "--port", "x", "--keyboard", "--command", "0,0,0"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_virtual_keyboard_over_a_pty(standing_policy, tmp_path):
    """`robotac deploy --virtual --keyboard` on a terminal: keys steer, a closed terminal stops.

    Paced by what the robot received (its report, rewritten every 50 ms), not by sleeps a busy
    machine can outrun; Ctrl-C ends the run (the 60 s duration only bounds a hang).
    """
    import json

    from deploy_test_helpers import robot_report, wait_for_report, wait_for_run_phase

    master, slave = os.openpty()
    log, summary = tmp_path / "log.npz", tmp_path / "summary.json"
    report = tmp_path / "robot.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy", "--virtual", "--virtual-mode", "stepped", "--keyboard",
         "--policy", str(standing_policy), "--duration-s", "60", "--ramp-s", "0.2", "--hold-s",
         "0.2", "--log", str(log), "--summary", str(summary),
         "--virtual-args", f"--report {report} --report-every-s 0.05"],
        cwd=ROOT, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell's background job inherits SIGINT ignored: give the child the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(slave)
    try:
        lines = []
        while not (lines and lines[-1].startswith("keys:")):
            lines.append(proc.stdout.readline())
            assert lines[-1], f"deploy did not start: {lines} {proc.stderr.read()}"
        wait_for_run_phase(report, proc)  # keys before it would be drained by the hold
        os.write(master, b"www")
        # 30 steps more: the shaped command climbs 0.02 a step (1 m/s^2) to the keys' 0.3.
        n = robot_report(report)["position_commands"]
        wait_for_report(report, lambda r: r["position_commands"] >= n + 30, proc)
        os.close(master)  # the terminal goes away
        master = -1
        # 30 steps more: from 0.3 down to exactly zero takes 15.
        n = robot_report(report)["position_commands"]
        wait_for_report(report, lambda r: r["position_commands"] >= n + 30, proc)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the end of the run
        out, err = proc.communicate(timeout=60)
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted by the operator" in out, out + err
    assert "keyboard: terminal read failed" in err or "keyboard: end of input" in err
    s = json.loads(summary.read_text())
    assert s["command_source"] == "keyboard" and len(s["command_events"]) == 1
    cmd = np.load(log)["command"]
    cmd = cmd[np.isfinite(cmd[:, 0])]
    assert cmd[:, 0].max() > 0.2  # the key presses moved it forward
    assert cmd[-1, 0] == 0.0  # then the closed terminal brought it back to zero
