"""Velocity commands at deploy: where they come from, and how they are shaped before the policy.

A command is ``(vx [m/s], vy [m/s], yaw rate [rad/s])`` in the body frame, as the env feeds it to
the policy. Every source has the same tiny interface, :class:`CommandSource`:
``poll(t_s) -> (3,) float64`` (``t_s``: time since the start of the run phase [s]; never blocks)
and ``close()``. The loop polls once per control period.

Sources:

- :class:`FixedCommand`: one value for the whole run (``--command VX,VY,YAW``).
- :class:`KeyboardCommand`: the terminal keyboard (``--keyboard``), works over SSH. Each key press
  steps the command by :data:`KEY_STEPS`:

  ======================  =========================================
  key                     effect
  ======================  =========================================
  ``w`` / up arrow        vx += 0.1 m/s (forward)
  ``s`` / down arrow      vx -= 0.1 m/s (backward)
  ``a`` / left arrow      vy += 0.05 m/s (sideways, to the left)
  ``d`` / right arrow     vy -= 0.05 m/s (to the right)
  ``q``                   yaw rate += 0.2 rad/s (turn left, counter-clockwise)
  ``e``                   yaw rate -= 0.2 rad/s (turn right)
  space                   stop: zero command
  ======================  =========================================

  The terminal is put in cbreak mode (no echo, no line buffering; Ctrl-C still interrupts) and
  restored by :meth:`KeyboardCommand.close`. A closed terminal (end of file, a read error, or
  ``SIGHUP`` when the SSH session drops) means stand still: the command becomes zero for the
  rest of the run and the event is recorded.
- :class:`GamepadCommand`: a gamepad through the Linux input API (``--gamepad [DEVICE]``, needs
  the optional ``evdev``: ``pip install 'robotac[gamepad]'``). Without ``DEVICE`` the first input
  device with a left stick (``ABS_X``, ``ABS_Y``) and gamepad buttons (``BTN_SOUTH``, alias
  ``BTN_GAMEPAD``) is used: touchpads, touchscreens and tablets have the axes but not the
  buttons. Left stick: vx (up = forward) and vy (left = left); right stick horizontal
  (``ABS_RX``, else ``ABS_Z``): yaw rate (left = turn left). Either may be an analog trigger
  instead (``ABS_Z`` is the left trigger on xpad and hid-playstation pads, ``ABS_RX`` on a
  DualShock behind the generic HID driver), which rests at its minimum and would read as full
  deflection: a *trigger* is an axis with a one-sided range (minimum >= 0) that reads within the
  dead zone of its minimum when the gamepad is opened, and it is never used (a stick on a
  0-255 range rests at its centre; a signed range is a stick's). Full deflection is the end of
  the trained range; a dead zone of :data:`STICK_DEAD_ZONE` around the centre reads as zero.
  The gamepad refuses to open while a stick it uses reads beyond the dead zone (naming the
  axis), and at the start of the run phase (:meth:`GamepadCommand.resync`) a stick off centre
  holds the command at zero, recorded with the axis, until every stick is back inside the dead
  zone. A (``BTN_SOUTH``) = stop (zero, latched), START = resume. A gamepad that vanishes
  mid-run (``OSError``, e.g. ``ENODEV`` when unplugged) means stand still, recorded. After
  ``SYN_DROPPED`` (the kernel's event buffer overflowed) and at the start of the run phase the
  sticks are read again from the device; the loop drains every source during ramp and hold.
- :class:`ScheduleCommand`: a timed schedule file (``--command-schedule FILE``), piecewise
  constant. CSV (``t_s, vx, vy, yaw_rate`` per row; ``#`` comments and a header row allowed),
  JSON (a list of ``[t_s, vx, vy, yaw_rate]`` rows or of objects with those keys), or YAML of the
  same shape when pyyaml is installed. Row ``i`` holds from its ``t_s`` until the next row's;
  zero before the first row, the last row until the end.

:class:`CommandShaper` then turns the source's command into the policy's: clipped to the ranges
the policy was trained on (its ONNX metadata's ``env_kwargs.command_ranges`` merged over
:data:`envs.interface.QUADRUPED_COMMAND_RANGES`; one warning per run when it clips) and rate
limited (:data:`DEFAULT_COMMAND_MAX_RATE`: at most 1 m/s^2 on vx and vy and 2 rad/s^2 on the yaw
rate, from zero at the start of the run phase; a :class:`FixedCommand` starts at its own value,
as the env gives it from the first step). A source that stands the robot still (a closed
terminal, a dead, stopped or held gamepad: its ``standing`` attribute) gives an exact zero, never
clipped into a range. Commands inside the env's standing band (``|(vx, vy)| < 0.1`` m/s and
``|yaw rate| < 0.1`` rad/s, :func:`envs.quadruped.is_standing_command`) are passed on as they
are: the env trains a policy to stand at them (one sideways key press, 0.05 m/s, is one;
before 2026-12-07 its ``gait_contacts`` term asked for a trot there).

A policy trained on one command (``env_kwargs.fixed_command``) refuses live sources
(:func:`check_source_for_policy`): the normalizer saw no variation in the command entries, so any
other command is out of its distribution. So does a policy whose trained ranges exclude zero: a
live source stands still with a zero command.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from envs.interface import QUADRUPED_COMMAND_RANGES

__all__ = [
    "COMMAND_KEYS",
    "DEFAULT_COMMAND_MAX_RATE",
    "KEY_STEPS",
    "STICK_DEAD_ZONE",
    "CommandSource",
    "CommandSourceError",
    "LiveCommandRefused",
    "FixedCommand",
    "KeyboardCommand",
    "GamepadCommand",
    "ScheduleCommand",
    "CommandShaper",
    "command_ranges",
    "policy_command_ranges",
    "trained_fixed_command",
    "check_source_for_policy",
    "refuse_live_commands",
    "open_gamepad",
]

#: Order of the command components.
COMMAND_KEYS = ("vx", "vy", "yaw_rate")
#: Largest change of the shaped command per second: vx [m/s^2], vy [m/s^2], yaw rate [rad/s^2].
DEFAULT_COMMAND_MAX_RATE: tuple[float, float, float] = (1.0, 1.0, 2.0)
#: Command change per key press: vx [m/s], vy [m/s], yaw rate [rad/s].
KEY_STEPS: tuple[float, float, float] = (0.1, 0.05, 0.2)
#: Stick deflection (fraction of the half range) that reads as zero.
STICK_DEAD_ZONE = 0.1
#: The recipe to point at when a policy was trained on one command.
STEER_RECIPE = "recipes/quadruped_steer.yaml"


class CommandSourceError(RuntimeError):
    """A command source cannot be opened or read (bad file, missing extra, no device)."""


class LiveCommandRefused(CommandSourceError):
    """A live command source was asked of a policy trained on one fixed command."""


@runtime_checkable
class CommandSource(Protocol):
    """Where the velocity command comes from. ``poll`` must not block.

    Attributes:
        name: Short description for the summary, e.g. ``"keyboard"``.
        events: ``(t_s, text)`` notes the source wants in the log (closed terminal, unplugged
            gamepad); may stay empty.
    """

    name: str
    events: list[tuple[float, str]]

    def poll(self, t_s: float) -> np.ndarray:
        """The command at ``t_s`` [s] since the start of the run phase: ``(3,)`` float64."""
        ...

    def close(self) -> None:
        """Release what the source holds (terminal mode, device); idempotent."""
        ...


def _warn(text: str) -> None:
    """Print a warning to stderr; a terminal that is gone must not stop the loop."""
    try:
        print(f"warning: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def command_ranges(env_kwargs: dict[str, Any] | None,
                   robot_ranges: dict[str, Any] | None = None,
                   deploy_ranges: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The command ranges deploy clips a policy's live commands to: those it was trained on,
    or the narrower ones it was exported with.

    A policy tracks the middle of its trained ranges better than their ends (trained to 0.4 m/s
    forward, the smooth gait walked 0.29-0.34 m/s at 0.4; trained to 0.5, 0.29-0.38:
    docs/benchmarks.md, "Training on the advertised range"), so a recipe may train past what the
    robot is then advertised to do, and ``robotac export --deploy-range`` records the narrower
    ranges as the metadata's ``deploy_command_ranges``.

    Args:
        env_kwargs: The ``env_kwargs`` of the policy's ONNX metadata (``None`` or ``{}``: the
            env defaults).
        robot_ranges: The robot's own ranges, the env defaults for it (the metadata's
            ``robot.command_ranges``, from its description); ``None``: the default quadruped's.
        deploy_ranges: The metadata's ``deploy_command_ranges``: ``{key: [low, high]}`` for some
            of :data:`COMMAND_KEYS`, each inside the trained range; ``None``: the trained ranges.

    Returns:
        ``(low, high)``, each ``(3,)`` float64 in :data:`COMMAND_KEYS` order: ``deploy_ranges``
        over the trained ranges, which are ``command_ranges`` merged over ``robot_ranges``,
        itself over :data:`envs.interface.QUADRUPED_COMMAND_RANGES`.

    Raises:
        ValueError: on an unknown key, a range that is not ``low <= high``, or a deploy range
            outside the trained one (naming both).
    """
    merged = dict(QUADRUPED_COMMAND_RANGES)
    for k, v in [*(robot_ranges or {}).items(),
                 *((env_kwargs or {}).get("command_ranges") or {}).items()]:
        if k not in merged:
            raise ValueError(f"policy metadata command_ranges has unknown key {k!r}; valid: "
                             f"{list(merged)}")
        merged[k] = (float(v[0]), float(v[1]))
    low = np.array([merged[k][0] for k in COMMAND_KEYS], dtype=np.float64)
    high = np.array([merged[k][1] for k in COMMAND_KEYS], dtype=np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low <= high).all()):
        raise ValueError(f"policy metadata command ranges are not low <= high: {merged}")
    for k, v in (deploy_ranges or {}).items():
        if k not in COMMAND_KEYS:
            raise ValueError(f"deploy_command_ranges has unknown key {k!r}; valid: "
                             f"{list(COMMAND_KEYS)}")
        try:
            lo, hi = (float(x) for x in v)
        except (TypeError, ValueError):
            lo = hi = float("nan")
        i = COMMAND_KEYS.index(k)
        if not (np.isfinite(lo) and np.isfinite(hi) and low[i] <= lo <= hi <= high[i]):
            raise ValueError(
                f"deploy_command_ranges[{k!r}] = {v!r} must be [low, high] with low <= high "
                f"inside the trained range [{low[i]:g}, {high[i]:g}]; export again with "
                f"--deploy-range {k} LOW HIGH inside it")
        low[i], high[i] = lo, hi
    return low, high


def policy_command_ranges(metadata: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`command_ranges` of a policy's ONNX metadata (``env_kwargs``,
    ``robot.command_ranges``, ``deploy_command_ranges``): ``(low, high)``, each ``(3,)``
    float64.

    Raises:
        ValueError: as :func:`command_ranges`.
    """
    md = metadata or {}
    return command_ranges(md.get("env_kwargs"), (md.get("robot") or {}).get("command_ranges"),
                          md.get("deploy_command_ranges"))


def trained_fixed_command(env_kwargs: dict[str, Any] | None) -> np.ndarray | None:
    """The one command a policy was trained on (``env_kwargs.fixed_command``), or ``None``."""
    fixed = (env_kwargs or {}).get("fixed_command")
    return None if fixed is None else np.asarray(fixed, dtype=np.float64).reshape(3)


def refuse_live_commands(
    env_kwargs: dict[str, Any] | None, source_name: str, policy_name: str = "the policy"
) -> None:
    """Refuse a live command source (keyboard, gamepad, schedule) for a policy that cannot
    follow one: trained on a fixed command, or on command ranges that exclude zero (a live
    source stands still with a zero command).

    Raises:
        LiveCommandRefused: the policy metadata has ``env_kwargs.fixed_command``, or a trained
            range (:func:`command_ranges`) excludes 0; the message says why and what to do.
    """
    fixed = trained_fixed_command(env_kwargs)
    if fixed is not None:
        trained = ",".join(f"{x:g}" for x in fixed)
        raise LiveCommandRefused(
            f"{policy_name} was trained on one command only (its metadata has "
            f"env_kwargs.fixed_command = {trained}), so it cannot follow a {source_name} "
            f"command: any other command is outside what it saw. Use --command {trained} with "
            "it, or train a policy with sampled commands (no fixed_command), e.g. "
            f"`robotac train --config {STEER_RECIPE}`"
        )
    low, high = command_ranges(env_kwargs)
    no_zero = [f"{k} [{lo:g}, {hi:g}]" for k, lo, hi in zip(COMMAND_KEYS, low, high, strict=True)
               if lo > 0 or hi < 0]
    if no_zero:
        raise LiveCommandRefused(
            f"{policy_name} was trained on command ranges that exclude zero "
            f"({', '.join(no_zero)}), so it cannot follow a {source_name} command: a live "
            "command stops at zero (the stop key or button, a closed terminal, an unplugged "
            "gamepad, a schedule's zero rows), which this policy never saw and which the "
            "trained ranges would clip up to walking. Use --command VX,VY,YAW inside the ranges "
            "with it, or train with command ranges that include 0, e.g. "
            f"`robotac train --config {STEER_RECIPE}`"
        )


def check_source_for_policy(
    env_kwargs: dict[str, Any] | None, source: CommandSource, policy_name: str = "the policy"
) -> list[str]:
    """Refuse a live source for a fixed-command policy; warn on a fixed command it never saw.

    Args:
        env_kwargs: The policy metadata's ``env_kwargs``.
        source: The command source about to be used.
        policy_name: How to name the policy in messages (its file).

    Returns:
        Warnings to show (empty when all is well).

    Raises:
        LiveCommandRefused: ``source`` is not a :class:`FixedCommand` and the policy was trained
            with ``fixed_command`` (:func:`refuse_live_commands`).
    """
    if not isinstance(source, FixedCommand):
        refuse_live_commands(env_kwargs, source.name, policy_name)
        return []
    fixed = trained_fixed_command(env_kwargs)
    if fixed is None or np.allclose(source.value, fixed, atol=1e-6):
        return []
    trained = ",".join(f"{x:g}" for x in fixed)
    given = ",".join(f"{x:g}" for x in source.value)
    return [f"{policy_name} was trained on the command {trained} only (env_kwargs.fixed_command); "
            f"--command {given} is outside what it saw and it may not follow it"]


class FixedCommand:
    """One command for the whole run.

    Args:
        command: ``(vx [m/s], vy [m/s], yaw rate [rad/s])``.

    Raises:
        ValueError: if it is not three finite numbers.
    """

    def __init__(self, command: tuple[float, float, float] | np.ndarray):
        value = np.asarray(command, dtype=np.float64).reshape(-1)
        if value.shape != (3,) or not np.isfinite(value).all():
            raise ValueError(f"command must be three finite numbers (vx, vy, yaw_rate), got "
                             f"{command!r}")
        self.value = value
        self.name = "fixed " + ",".join(f"{x:g}" for x in value)
        self.events: list[tuple[float, str]] = []

    def poll(self, t_s: float) -> np.ndarray:
        return self.value.copy()

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# Keyboard

#: Key bytes -> (component, sign); space -> stop. Arrow keys in both cursor-key modes.
_KEYS: dict[bytes, tuple[int, float]] = {
    b"w": (0, 1.0), b"s": (0, -1.0), b"a": (1, 1.0), b"d": (1, -1.0),
    b"q": (2, 1.0), b"e": (2, -1.0),
    b"\x1b[A": (0, 1.0), b"\x1b[B": (0, -1.0), b"\x1b[D": (1, 1.0), b"\x1b[C": (1, -1.0),
    b"\x1bOA": (0, 1.0), b"\x1bOB": (0, -1.0), b"\x1bOD": (1, 1.0), b"\x1bOC": (1, -1.0),
}
_STOP_KEYS = (b" ",)
#: Bytes read from the terminal per poll at most.
_MAX_READ = 4096
#: Longest escape sequence kept waiting for its final byte [bytes].
_MAX_SEQUENCE = 16


class KeyboardCommand:
    """The command stepped by key presses on a terminal (see the module docstring for the keys).

    Args:
        fd: File descriptor to read (default: stdin). When it is a terminal, it is switched to
            cbreak mode (no echo, no line buffering, signals kept) until :meth:`close`.
        steps: Change per key press, :data:`KEY_STEPS`.
        limits: Optional ``(low, high)`` ``(3,)`` bounds the command is kept in (the trained
            ranges), so extra presses past a bound do not pile up.
        handle_sighup: Treat ``SIGHUP`` (the terminal hung up) as a closed terminal; installed
            only from the main thread, the previous handler is restored by :meth:`close`.

    Raises:
        CommandSourceError: if ``fd`` cannot be read.
    """

    def __init__(
        self,
        fd: int | None = None,
        steps: tuple[float, float, float] = KEY_STEPS,
        limits: tuple[np.ndarray, np.ndarray] | None = None,
        handle_sighup: bool = True,
    ):
        self.fd = sys.stdin.fileno() if fd is None else int(fd)
        self.steps = np.asarray(steps, dtype=np.float64)
        self.limits = limits
        self.name = "keyboard"
        self.events: list[tuple[float, str]] = []
        self.command = np.zeros(3)
        self.closed = False  # the terminal is gone: zero from now on
        self.presses = 0
        self.is_tty = os.isatty(self.fd)
        self._pending = b""
        self._hangup = False
        self._saved_attrs: list | None = None
        self._prev_sighup: Any = None
        self._sighup_installed = False
        try:
            os.fstat(self.fd)
        except OSError as exc:
            raise CommandSourceError(f"--keyboard cannot read file descriptor {self.fd}: {exc}"
                                     ) from exc
        if self.is_tty:
            import termios
            import tty

            try:
                self._saved_attrs = termios.tcgetattr(self.fd)
                tty.setcbreak(self.fd, termios.TCSANOW)
            except termios.error as exc:
                raise CommandSourceError(f"--keyboard cannot set up the terminal: {exc}") from exc
        if handle_sighup and threading.current_thread() is threading.main_thread():
            self._prev_sighup = signal.signal(signal.SIGHUP, self._on_sighup)
            self._sighup_installed = True

    @property
    def standing(self) -> bool:
        """The terminal is gone: zero command for the rest of the run."""
        return self.closed

    def _on_sighup(self, signum: int, frame: object) -> None:
        self._hangup = True

    def _lose_terminal(self, t_s: float, why: str) -> None:
        self.closed = True
        self.command = np.zeros(3)
        self.events.append((t_s, f"keyboard: {why}; standing still (zero command)"))
        _warn(f"keyboard: {why}; standing still (zero command)")

    def poll(self, t_s: float) -> np.ndarray:
        """Read the keys pressed since the last call (never blocks); return the command."""
        if self.closed:
            return np.zeros(3)
        if self._hangup:
            self._lose_terminal(t_s, "terminal hung up (SIGHUP)")
            return np.zeros(3)
        data = b""
        try:
            # Bounded per call (a flood, e.g. a pipe, must not hold the loop); the rest waits in
            # the kernel for the next call. Every byte read is parsed: no truncation that could
            # cut an arrow key's escape sequence and leave its tail ("A") to read as a key.
            while len(data) < _MAX_READ and select.select([self.fd], [], [], 0)[0]:
                chunk = os.read(self.fd, 256)
                if not chunk:
                    self._lose_terminal(t_s, "end of input (terminal closed)")
                    break
                data += chunk
        except OSError as exc:  # EIO once the pty's other side is gone
            self._lose_terminal(t_s, f"terminal read failed ({exc.strerror or exc})")
        if data:
            self._handle(data)
        if self.closed:
            return np.zeros(3)
        return self.command.copy()

    def _handle(self, data: bytes) -> None:
        """Apply the key presses in ``data`` in order; escape sequences are recognised first, an
        incomplete one waits for the next read, and one that never ends is dropped whole."""
        buf = self._pending + data
        self._pending = b""
        i = 0
        while i < len(buf):
            if buf[i] != 0x1B:
                self._press(buf[i:i + 1].lower())
                i += 1
                continue
            # Escape sequence: ESC [ ... final or ESC O final (final byte in 0x40-0x7E).
            if i + 1 >= len(buf):
                self._pending = buf[i:]  # the rest comes with the next read
                break
            if buf[i + 1] not in b"[O":
                i += 1  # a lone Esc key: ignored
                continue
            j = i + 2
            while j < len(buf) and not 0x40 <= buf[j] <= 0x7E:
                j += 1
            if j >= len(buf):
                if len(buf) - i <= _MAX_SEQUENCE:
                    self._pending = buf[i:]  # the rest comes with the next read
                break  # else: an orphan sequence (no final byte) is dropped with its tail
            self._press(buf[i:j + 1])
            i = j + 1

    def _press(self, key: bytes) -> None:
        if key in _STOP_KEYS:
            self.command = np.zeros(3)
        elif key in _KEYS:
            j, sign = _KEYS[key]
            self.command[j] = round(self.command[j] + sign * self.steps[j], 9)
        else:
            return
        self.presses += 1
        if self.limits is not None:
            self.command = np.clip(self.command, self.limits[0], self.limits[1])

    def close(self) -> None:
        """Restore the terminal mode and the SIGHUP handler (idempotent; never raises)."""
        if self._saved_attrs is not None:
            import termios

            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved_attrs)
            except (termios.error, OSError):
                pass  # the terminal is gone
            self._saved_attrs = None
        if self._sighup_installed:
            try:
                signal.signal(signal.SIGHUP,
                              signal.SIG_DFL if self._prev_sighup is None else self._prev_sighup)
            except (ValueError, OSError, TypeError):
                pass
            self._sighup_installed = False


# ---------------------------------------------------------------------------------------------
# Gamepad

# Linux input event codes (linux/input-event-codes.h, a stable ABI), so the mapping needs no
# evdev import and tests can drive it with a fake device.
EV_SYN, EV_KEY, EV_ABS = 0x00, 0x01, 0x03
SYN_REPORT, SYN_DROPPED = 0x00, 0x03
ABS_X, ABS_Y, ABS_Z, ABS_RX = 0x00, 0x01, 0x02, 0x03
BTN_SOUTH, BTN_START = 0x130, 0x13B
#: The first gamepad button; the kernel's alias of BTN_SOUTH (the A button).
BTN_GAMEPAD = BTN_SOUTH
#: How the messages name the axes the gamepad may use.
_AXIS_NAMES = {ABS_X: "ABS_X", ABS_Y: "ABS_Y", ABS_Z: "ABS_Z", ABS_RX: "ABS_RX"}
_AXIS_ROLES = {ABS_X: "left stick, left/right", ABS_Y: "left stick, up/down",
               ABS_Z: "right stick, left/right", ABS_RX: "right stick, left/right"}


def _is_trigger(info: Any, dead_zone: float) -> bool:
    """Whether an axis is an analog trigger, from its ``absinfo`` read when the gamepad opens.

    A trigger rests at its minimum on a one-sided range (``min >= 0``, e.g. 0-255 or 0-1023);
    read within ``dead_zone`` (fraction of the half range) of the minimum. Neither clue alone
    will do: the generic HID driver reports sticks on 0-255 too (resting at 128), and a stick on
    a signed range (-32768..32767) read at its minimum is a held stick, which the open refuses.
    """
    lo, hi, value = float(info.min), float(info.max), float(info.value)
    return lo >= 0 and hi > lo and value - lo <= dead_zone * (hi - lo) / 2


class GamepadCommand:
    """The command from a gamepad's sticks (see the module docstring for the mapping).

    Args:
        device: An open ``evdev.InputDevice`` (or any object with ``read()`` that yields events
            with ``type``, ``code``, ``value`` and raises ``BlockingIOError`` when none are
            pending, ``absinfo(code)`` giving ``value``, ``min``, ``max``, ``capabilities()``
            and ``close()``); :func:`open_gamepad` opens one by path.
        limits: ``(low, high)`` ``(3,)`` command ranges: full deflection reaches them.
        dead_zone: Deflection (fraction of the half range) that reads as zero.

    Attributes:
        yaw_axis: ``ABS_RX`` or ``ABS_Z``, the first of them that is not a trigger (see the
            module docstring), or ``None``: the yaw rate stays 0 (recorded in ``events``).
        triggers: The yaw candidates left out as triggers.
        stopped: The stop button (A) latched a zero command until START.
        held: A stick was off centre at the start of the run phase (:meth:`resync`): zero
            command until every stick is back inside the dead zone.
        dead: The device vanished: zero for the rest of the run.

    Raises:
        CommandSourceError: if the device has no left stick (``ABS_X``, ``ABS_Y``), or a stick it
            uses reads beyond the dead zone (naming the axis and its reading).
    """

    def __init__(
        self,
        device: Any,
        limits: tuple[np.ndarray, np.ndarray] | None = None,
        dead_zone: float = STICK_DEAD_ZONE,
    ):
        self.device = device
        low, high = limits if limits is not None else command_ranges(None)
        self.low, self.high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        self.dead_zone = float(dead_zone)
        label = getattr(device, "name", "") or "gamepad"
        self.name = f"gamepad {label} ({getattr(device, 'path', '?')})"
        self.events: list[tuple[float, str]] = []
        self.dead = False
        self.stopped = False
        self.held = False
        abs_codes = set(_abs_codes(device))
        if not {ABS_X, ABS_Y} <= abs_codes:
            raise CommandSourceError(
                f"{self.name} has no left stick (ABS_X and ABS_Y axes); give the gamepad's "
                "device, e.g. --gamepad /dev/input/event5 (list them with `python -m evdev.evtest`)"
            )
        self._range: dict[int, tuple[float, float]] = {}
        self._axis: dict[int, float] = {}
        self._raw: dict[int, float] = {}
        for code in (ABS_X, ABS_Y):
            info = device.absinfo(code)
            self._range[code] = (float(info.min), float(info.max))
            self._set(code, float(info.value))
        self.yaw_axis: int | None = None
        self.triggers: list[int] = []
        for code in (ABS_RX, ABS_Z):
            if code not in abs_codes:
                continue
            info = device.absinfo(code)
            if _is_trigger(info, self.dead_zone):
                self.triggers.append(code)
                continue
            self.yaw_axis = code
            self._range[code] = (float(info.min), float(info.max))
            self._set(code, float(info.value))
            break
        if self.yaw_axis is None:
            why = (", ".join(f"{_AXIS_NAMES[c]} rests at its minimum (a trigger)"
                             for c in self.triggers) or "no ABS_RX or ABS_Z axis")
            text = f"gamepad: no right stick found ({why}); the yaw rate stays 0"
            self.events.append((0.0, text))
            _warn(text)
        self.resyncs = 0
        self._dropping = False
        off = self._off_centre()
        if off:
            raise CommandSourceError(
                f"{self.name}: {off} at open, beyond the dead zone ({self.dead_zone:g} of the "
                "half range): let go of the sticks and triggers before starting, or give the "
                "gamepad's device if this is not one (--gamepad /dev/input/eventN)"
            )

    def resync(self) -> None:
        """At the start of the run phase (the loop calls it): re-read every stick from the
        device, and hold the command at zero (``held``, recorded naming the axis) while one
        reads beyond the dead zone; the hold ends when every stick is back inside it.
        """
        if not self._reread():
            return
        off = self._off_centre()
        if off:
            self.held = True
            text = (f"gamepad: {off} at the start of the run, beyond the dead zone; standing "
                    "still (zero command) until the sticks are centred")
            self.events.append((0.0, text))
            _warn(text)

    def _reread(self) -> bool:
        """Re-read every stick's present value from the device (``absinfo``); ``False`` if the
        device failed (noticed and recorded by the next read).

        Also after the kernel dropped events (``SYN_DROPPED``: its buffer overflowed, e.g. the
        stick's release was lost): no hold then, a stick still held is still meant.
        """
        try:
            for code in self._range:
                self._set(code, float(self.device.absinfo(code).value))
        except OSError:
            return False
        self.resyncs += 1
        return True

    def _set(self, code: int, value: float) -> None:
        self._raw[code] = value
        self._axis[code] = self._normalize(code, value)

    def _off_centre(self) -> str:
        """The sticks in use that read beyond the dead zone, described for a message ("" if
        none): name, reading and range."""
        return ", ".join(
            f"{_AXIS_NAMES[c]} ({_AXIS_ROLES[c]}) reads {self._raw[c]:g} (range "
            f"{self._range[c][0]:g} to {self._range[c][1]:g})"
            for c in self._range if self._axis[c] != 0.0
        )

    @property
    def standing(self) -> bool:
        """Unplugged, the stop button latched, or held at the start (a stick off centre): zero
        command."""
        return self.dead or self.stopped or self.held

    def _normalize(self, code: int, value: float) -> float:
        lo, hi = self._range[code]
        if hi <= lo:
            return 0.0
        x = 2.0 * (value - lo) / (hi - lo) - 1.0
        if abs(x) < self.dead_zone:
            return 0.0
        # Rescale so the output starts at 0 at the dead zone's edge and reaches 1 at full stroke.
        return float(np.clip(math.copysign((abs(x) - self.dead_zone) / (1.0 - self.dead_zone), x),
                             -1.0, 1.0))

    def _scaled(self, j: int, x: float) -> float:
        return x * self.high[j] if x >= 0 else -x * self.low[j]

    def poll(self, t_s: float) -> np.ndarray:
        """Apply the pending events (never blocks) and return the command.

        After ``SYN_DROPPED`` the events up to the next ``SYN_REPORT`` are ignored and the axes
        re-read from the device, so a lost stick release does not keep the robot walking. A hold
        (:meth:`resync`) ends here once every stick reads inside the dead zone.
        """
        if self.dead:
            return np.zeros(3)
        dropped = resync = False
        try:
            for ev in self.device.read():
                if ev.type == EV_SYN:
                    if ev.code == SYN_DROPPED:
                        # The kernel's buffer overflowed and events were lost (the stick's
                        # release, maybe): ignore the rest of this report and read the axes'
                        # present values instead (as libevdev does).
                        dropped = resync = self._dropping = True
                    elif ev.code == SYN_REPORT and self._dropping:
                        self._dropping = False
                        resync = True
                elif self._dropping:
                    continue
                elif ev.type == EV_ABS and ev.code in self._range:
                    self._set(ev.code, float(ev.value))
                elif ev.type == EV_KEY and ev.value == 1:
                    if ev.code == BTN_SOUTH:
                        self.stopped = True
                        self.events.append((t_s, "gamepad: stop button (A) pressed; zero command "
                                                  "until START"))
                    elif ev.code == BTN_START and self.stopped:
                        self.stopped = False
                        self.events.append((t_s, "gamepad: START pressed; sticks steer again"))
        except BlockingIOError:
            pass  # no more events pending
        except OSError as exc:
            self.dead = True
            why = errno.errorcode.get(exc.errno or 0, str(exc))
            text = (f"gamepad: {self.name} read failed ({why}: {exc.strerror or exc}), "
                    "unplugged?; standing still (zero command)")
            self.events.append((t_s, text))
            _warn(text)
            return np.zeros(3)
        if dropped:
            self.events.append((t_s, "gamepad: events dropped by the kernel (SYN_DROPPED); "
                                     "stick positions read again from the device"))
        if resync:
            self._reread()
        if self.held and not self._off_centre():
            self.held = False
            self.events.append((t_s, "gamepad: sticks centred; they steer now"))
        if self.stopped or self.held:
            return np.zeros(3)
        # Stick up is negative ABS_Y (forward), stick left is negative ABS_X (+vy, +yaw: to the
        # left, counter-clockwise seen from above).
        cmd = np.array([
            self._scaled(0, -self._axis[ABS_Y]),
            self._scaled(1, -self._axis[ABS_X]),
            0.0 if self.yaw_axis is None else self._scaled(2, -self._axis[self.yaw_axis]),
        ])
        return cmd

    def close(self) -> None:
        try:
            self.device.close()
        except Exception:  # noqa: BLE001 - closing a vanished device must not raise
            pass


def _abs_codes(device: Any) -> list[int]:
    caps = device.capabilities()
    return [c[0] if isinstance(c, tuple) else c for c in caps.get(EV_ABS, [])]


def open_gamepad(
    path: str | None, limits: tuple[np.ndarray, np.ndarray] | None = None
) -> GamepadCommand:
    """Open a gamepad with evdev: ``path``, or the first gamepad found.

    A gamepad, for the search, is an input device with a left stick (``ABS_X``, ``ABS_Y``) and
    gamepad buttons (``BTN_SOUTH``, alias ``BTN_GAMEPAD``, among its ``EV_KEY`` codes): a
    touchpad, touchscreen or tablet reports ``ABS_X``/``ABS_Y`` and keys (``BTN_TOUCH``,
    ``BTN_LEFT``) but no gamepad button.

    Raises:
        CommandSourceError: evdev is not installed (naming ``pip install 'robotac[gamepad]'``),
            the device cannot be opened, no gamepad is found, or :class:`GamepadCommand`
            refuses it (a stick off centre).
    """
    try:
        import evdev
    except ImportError as exc:
        raise CommandSourceError(
            "--gamepad needs the evdev package (Linux input devices): "
            "pip install 'robotac[gamepad]'"
        ) from exc
    if path is None:
        candidates = []
        for p in evdev.list_devices():
            try:
                dev = evdev.InputDevice(p)
            except OSError:
                continue
            if _is_gamepad(dev):
                candidates.append(dev)
            else:
                dev.close()
        if not candidates:
            raise CommandSourceError(
                "--gamepad: no gamepad (an input device with a left stick, ABS_X and ABS_Y, and "
                "gamepad buttons, BTN_SOUTH) found under /dev/input (is it connected, and may "
                "this user read /dev/input/event*? add it to the 'input' group); or give the "
                "device: --gamepad /dev/input/eventN"
            )
        for dev in candidates[1:]:
            dev.close()
        dev = candidates[0]
    else:
        try:
            dev = evdev.InputDevice(path)
        except OSError as exc:
            raise CommandSourceError(f"--gamepad cannot open {path!r}: {exc}") from exc
    try:
        return GamepadCommand(dev, limits)
    except CommandSourceError:
        dev.close()
        raise


def _is_gamepad(device: Any) -> bool:
    """A left stick and the gamepad buttons (``BTN_SOUTH``) among the device's capabilities."""
    keys = device.capabilities().get(EV_KEY, [])
    return {ABS_X, ABS_Y} <= set(_abs_codes(device)) and BTN_GAMEPAD in keys


# ---------------------------------------------------------------------------------------------
# Schedule


class ScheduleCommand:
    """A piecewise-constant command schedule read from a file.

    Args:
        path: ``.csv`` (also any other suffix), ``.json``, or ``.yaml``/``.yml`` (needs pyyaml).

    Attributes:
        t_s: ``(n,)`` start times [s], strictly increasing, from the start of the run phase.
        commands: ``(n, 3)`` command of each row.

    Raises:
        CommandSourceError: unreadable file, a row that is not four finite numbers, times not
            strictly increasing or negative, an empty schedule, or YAML without pyyaml.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"schedule {self.path}"
        self.events: list[tuple[float, str]] = []
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise CommandSourceError(f"command schedule {str(self.path)!r}: {exc}") from exc
        suffix = self.path.suffix.lower()
        if suffix == ".json":
            try:
                rows = _rows_from_data(json.loads(text), self.path)
            except json.JSONDecodeError as exc:
                raise CommandSourceError(f"command schedule {str(self.path)!r}: not valid JSON: "
                                         f"{exc}") from exc
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as exc:
                raise CommandSourceError(
                    f"command schedule {str(self.path)!r} is YAML but pyyaml is not installed "
                    "(pip install pyyaml); or write it as CSV: t_s, vx, vy, yaw_rate per row"
                ) from exc
            try:
                rows = _rows_from_data(yaml.safe_load(text), self.path)
            except yaml.YAMLError as exc:
                raise CommandSourceError(f"command schedule {str(self.path)!r}: not valid YAML: "
                                         f"{exc}") from exc
        else:
            rows = _rows_from_csv(text)
        self.t_s, self.commands = self._check(rows)

    def _check(self, rows: list[tuple[str, list]]) -> tuple[np.ndarray, np.ndarray]:
        where = f"command schedule {str(self.path)!r}"
        if not rows:
            raise CommandSourceError(f"{where} has no rows; expected t_s, vx, vy, yaw_rate")
        values = []
        for label, row in rows:
            try:
                v = [float(x) for x in row]
            except (TypeError, ValueError):
                v = []
            if len(v) != 4 or not all(math.isfinite(x) for x in v):
                raise CommandSourceError(
                    f"{where} {label}: expected four numbers t_s, vx, vy, yaw_rate, got {row!r}")
            values.append(v)
        arr = np.asarray(values, dtype=np.float64)
        t = arr[:, 0]
        if t[0] < 0 or (np.diff(t) <= 0).any():
            raise CommandSourceError(
                f"{where}: times must be >= 0 and strictly increasing, got {t.tolist()}")
        return t, arr[:, 1:]

    @property
    def duration_s(self) -> float:
        """Start time of the last row [s]."""
        return float(self.t_s[-1])

    def poll(self, t_s: float) -> np.ndarray:
        """The row whose start is the latest at or before ``t_s``; zero before the first."""
        i = int(np.searchsorted(self.t_s, t_s, side="right")) - 1
        return np.zeros(3) if i < 0 else self.commands[i].copy()

    def close(self) -> None:
        pass


def _rows_from_csv(text: str) -> list[tuple[str, list]]:
    rows = []
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    for idx, (n, line) in enumerate(lines):
        cells = [c.strip() for c in next(csv.reader(io.StringIO(line)))]
        if idx == 0 and cells and cells[0].lower() in ("t_s", "t", "time", "time_s"):
            continue  # header row
        rows.append((f"line {n}", cells))
    return rows


def _rows_from_data(data: Any, path: Path) -> list[tuple[str, list]]:
    if isinstance(data, dict) and "schedule" in data:
        data = data["schedule"]
    if not isinstance(data, list):
        raise CommandSourceError(
            f"command schedule {str(path)!r}: expected a list of rows [t_s, vx, vy, yaw_rate] "
            f"(or objects with those keys), got {type(data).__name__}")
    rows = []
    for i, row in enumerate(data):
        if isinstance(row, dict):
            row = [row.get(k) for k in ("t_s", "vx", "vy", "yaw_rate")]
        rows.append((f"row {i}", row if isinstance(row, list | tuple) else [row]))
    return rows


# ---------------------------------------------------------------------------------------------
# Shaper


class CommandShaper:
    """Clip the command to the trained ranges and limit how fast it changes.

    Per control period: ``c = clip(raw, low, high)`` (one warning per shaper when it clips), then
    ``shaped = prev + clip(c - prev, -max_rate * dt, +max_rate * dt)`` per component, starting
    from zero (the robot stands at the start of the run phase) or from a fixed command
    (:meth:`start_at`). A non-finite raw command reads as zero (with a warning once); a source
    that stands the robot still gives an exact, unclipped zero (``stand``).

    Args:
        low, high: ``(3,)`` trained ranges (:func:`command_ranges`).
        control_period_s: ``dt`` [s].
        max_rate: ``(3,)`` largest change per second [m/s^2, m/s^2, rad/s^2]; ``inf`` disables.
        warn: Called with each warning text (default: print to stderr).

    Attributes:
        n_clipped: Steps whose raw command lay outside the ranges.
        n_rate_limited: Steps the rate limit changed.
        warnings: The warnings given.
    """

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        control_period_s: float,
        max_rate: tuple[float, float, float] = DEFAULT_COMMAND_MAX_RATE,
        warn: Callable[[str], None] = _warn,
    ):
        self.low = np.asarray(low, dtype=np.float64).reshape(3)
        self.high = np.asarray(high, dtype=np.float64).reshape(3)
        self.max_rate = np.asarray(max_rate, dtype=np.float64).reshape(3)
        if not (self.max_rate > 0).all():
            raise ValueError(f"command max_rate must be > 0 per component, got {max_rate}")
        self.max_step = self.max_rate * float(control_period_s)
        self.warn = warn
        self.command = np.zeros(3)
        self.n_clipped = 0
        self.n_rate_limited = 0
        self.warnings: list[str] = []
        self._warned_clip = False
        self._warned_non_finite = False

    @classmethod
    def for_policy(cls, env_kwargs: dict[str, Any] | None, control_period_s: float,
                   robot_ranges: dict[str, Any] | None = None, **kw: Any) -> CommandShaper:
        """The shaper for a policy whose metadata has these ``env_kwargs`` (and its robot these
        command ranges, :func:`command_ranges`)."""
        low, high = command_ranges(env_kwargs, robot_ranges)
        return cls(low, high, control_period_s, **kw)

    def note(self, text: str) -> None:
        """Record a warning and show it (``warn``)."""
        self.warnings.append(text)
        self.warn(text)

    def start_at(self, command: np.ndarray) -> None:
        """Start from ``command`` (clipped to the ranges) instead of zero.

        For a :class:`FixedCommand`: the env gives its command from the first step of an episode
        (contract 8), and a policy trained on one command never saw a ramp up to it.
        """
        c = np.asarray(command, dtype=np.float64).reshape(3)
        if np.isfinite(c).all():
            self.command = np.clip(c, self.low, self.high)

    def __call__(self, raw: np.ndarray, stand: bool = False) -> np.ndarray:
        """The next command fed to the policy: ``(3,)`` float64.

        Args:
            raw: ``(3,)`` the source's command.
            stand: The source stands the robot still (a closed terminal, a dead or stopped
                gamepad): its zero is the target as it is, never clipped into a trained range
                that excludes zero (rate limited down to exactly zero).
        """
        c = np.zeros(3) if stand else np.asarray(raw, dtype=np.float64).reshape(3)
        if not np.isfinite(c).all():
            if not self._warned_non_finite:
                self._warned_non_finite = True
                self.note(f"command source gave a non-finite command {c.tolist()}; using zero")
            c = np.zeros(3)
        clipped = c if stand else np.clip(c, self.low, self.high)
        if (clipped != c).any():
            self.n_clipped += 1
            if not self._warned_clip:
                self._warned_clip = True
                ranges = ", ".join(f"{k} [{lo:g}, {hi:g}]" for k, lo, hi in
                                   zip(COMMAND_KEYS, self.low, self.high, strict=True))
                self.note(f"command {np.round(c, 4).tolist()} lies outside the ranges the policy "
                          f"was trained on ({ranges}); clipped to {np.round(clipped, 4).tolist()} "
                          "(warned once per run)")
        step = np.clip(clipped - self.command, -self.max_step, self.max_step)
        out = self.command + step
        self.n_rate_limited += int((out != clipped).any())
        self.command = out
        return out.copy()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ranges": {k: [float(lo), float(hi)]
                       for k, lo, hi in zip(COMMAND_KEYS, self.low, self.high, strict=True)},
            "max_rate_per_s": self.max_rate.tolist(),
        }
