"""``robotac deploy`` / ``python -m deploy``: run an exported policy on a robot over a serial port.

    python -m deploy --policy policy.onnx --port /dev/ttyACM0 [--baud 1000000] [--rate-hz 50]
                     [--duration-s 10] [--command 0.5,0,0] [--log run.npz]
    python -m deploy --virtual [--policy FILE] ...   # start the virtual robot, connect via its pty
    python -m deploy --virtual --keyboard            # steer with WASD / arrows, Q/E, space = stop
    python -m deploy ... --gamepad [/dev/input/eventN] | --command-schedule demo.csv
    python -m deploy --link sts --port /dev/ttyUSB0 --imu-port /dev/ttyUSB1 \
                     --calibration calibration/sts_quadruped.json     # Feetech STS bus + BNO08x
    python -m deploy --virtual --link sts ...        # the STS bus emulator on two ptys
    python -m deploy --virtual --policy xl.onnx      # the robot the policy names (quadruped_xl)

``--link`` picks the robot link (``v1``: protocol v1 to a microcontroller, the default; ``sts``:
a Feetech STS servo bus driven directly, see ``deploy/sts.py``); it is recorded in the summary
(``link_kind``) and the log. Needs only the base dependencies (numpy, onnxruntime, pyserial,
cobs), plus ``feetech-servo-sdk`` for ``--link sts`` (``pip install 'robotac[sts]'``);
``--virtual`` also needs mujoco in the robot's process; ``--gamepad`` needs evdev
(``pip install 'robotac[gamepad]'``). The command sources and their shaping are described in
:mod:`deploy.commands` and docs/deploy.md ("Live commands"). Exit status: 0 run completed, 1 could
not start (bad policy, port, calibration, mismatch), 2 stopped on a fault, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from deploy.commands import (
    KEY_STEPS,
    CommandSourceError,
    FixedCommand,
    KeyboardCommand,
    ScheduleCommand,
    open_gamepad,
    policy_command_ranges,
    refuse_live_commands,
)
from deploy.link import DEFAULT_BAUD, LinkError, SerialLink
from deploy.loop import LoopConfig, run_deploy
from deploy.policy import OnnxPolicy, PolicyError
from deploy.safety import SafetyConfig

__all__ = ["main", "build_parser", "DEFAULT_POLICY", "start_virtual_robot"]

#: The shipped pretrained policy, used when ``--policy`` is omitted.
DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "pretrained" / (
    "quadruped_sac.onnx"
)


def _command(text: str, flag: str = "--command") -> tuple[float, float, float]:
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"{flag} must be three numbers VX,VY,YAW (m/s, m/s, rad/s), got {text!r}"
        )
    return values  # type: ignore[return-value]


def _rates(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(v > 0 for v in values):  # inf allowed: no limit
        raise argparse.ArgumentTypeError(
            f"--command-max-rate must be three rates > 0 AX,AY,AYAW (m/s^2, m/s^2, rad/s^2; inf "
            f"= no limit), got {text!r}"
        )
    return values  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="robotac deploy",
        description="Drive a robot with an exported ONNX policy over a robot link (protocol v1 "
                    "or a Feetech STS servo bus).",
    )
    ap.add_argument("--policy", type=Path, default=None,
                    help=f"exported .onnx policy (default: {DEFAULT_POLICY} when it exists)")
    target = ap.add_mutually_exclusive_group()
    target.add_argument("--port", default=None, help="serial device, e.g. /dev/ttyACM0")
    target.add_argument("--virtual", action="store_true",
                        help="start the virtual robot (MuJoCo) and connect through its pty")
    ap.add_argument("--link", choices=("v1", "sts"), default="v1",
                    help="robot link: v1 = protocol v1 to a microcontroller (default); sts = a "
                         "Feetech STS servo bus driven directly, with a BNO08x RVC IMU")
    ap.add_argument("--robot", default=None,
                    help="the robot driven, checked against the policy's (and with --link sts "
                         "the calibration's); --virtual: the robot simulated, a shipped "
                         "description's name or a description folder (default: the one the "
                         "policy was trained with, from its metadata)")
    ap.add_argument("--calibration", type=Path, default=None,
                    help="--link sts: calibration file from `robotac calibrate` (default "
                         "calibration/sts_quadruped.json; --virtual: the emulator's)")
    ap.add_argument("--imu-port", default=None,
                    help="--link sts: serial device of the BNO08x in UART-RVC mode")
    ap.add_argument("--baud", type=int, default=None,
                    help=f"baud rate (default {DEFAULT_BAUD}; --link sts: the calibration's)")
    ap.add_argument("--rate-hz", type=float, default=None,
                    help="control rate [Hz] (default: the policy's, 1 / control period)")
    ap.add_argument("--duration-s", type=float, default=10.0,
                    help="length of the policy phase [s], after ramp and hold")
    source = ap.add_mutually_exclusive_group()
    source.add_argument("--command", type=_command, default=None,
                        help="fixed velocity command VX,VY,YAW_RATE [m/s, m/s, rad/s] (default "
                             "0,0,0)")
    source.add_argument("--keyboard", action="store_true",
                        help="steer from this terminal (works over ssh -t): W/S or up/down = vx "
                             f"+-{KEY_STEPS[0]:g} m/s, A/D or left/right = vy +-{KEY_STEPS[1]:g} "
                             f"m/s, Q/E = yaw rate +-{KEY_STEPS[2]:g} rad/s, space = stop")
    source.add_argument("--gamepad", nargs="?", const="auto", default=None, metavar="DEVICE",
                        help="steer with a gamepad (Linux evdev; default: the first one found): "
                             "left stick vx/vy, right stick yaw rate, A = stop, START = resume")
    source.add_argument("--command-schedule", type=Path, default=None, metavar="FILE",
                        help="timed command schedule, CSV rows t_s,vx,vy,yaw_rate (or JSON/YAML), "
                             "piecewise constant from the start of the policy phase")
    ap.add_argument("--command-max-rate", type=_rates, default=None, metavar="AX,AY,AYAW",
                    help="largest change of the command per second [m/s^2, m/s^2, rad/s^2] "
                         "(default 1,1,2; inf,inf,inf = none)")
    ap.add_argument("--log", type=Path, default=None, help="per-step log (.npz)")
    ap.add_argument("--summary", type=Path, default=None, help="write the summary here (JSON)")
    ap.add_argument("--ramp-s", type=float, default=2.0, help="ramp to the default pose [s]")
    ap.add_argument("--hold-s", type=float, default=1.0, help="hold the default pose [s]")
    ap.add_argument("--lower-s", type=float, default=1.0,
                    help="at the stop, lower the body to the pose it started in (lying, or "
                         "hanging on the stand) over this time before torque is released, "
                         "where the bus still works [s]; 0 releases at once")
    ap.add_argument("--max-rate-rad-s", type=float, default=SafetyConfig.max_rate_rad_s,
                    help="per-joint target rate limit [rad/s]")
    ap.add_argument("--tilt-limit-deg", type=float, default=60.0,
                    help="ESTOP when the body tilts more than this [deg]")
    ap.add_argument("--rt-priority", type=int, default=0,
                    help="run the loop under SCHED_FIFO at this priority (1-99, Linux, root or "
                         "CAP_SYS_NICE); 0 = default scheduler")
    ap.add_argument("--fresh-state", action=argparse.BooleanOptionalAction, default=True,
                    help="READ the robot's state at each deadline and observe it (default); "
                         "--no-fresh-state observes the STATE that answered the previous "
                         "COMMAND, a period old, and saves one exchange per period")
    ap.add_argument("--virtual-mode", choices=("realtime", "stepped"), default="realtime",
                    help="virtual robot physics: wall clock, or one control period per COMMAND")
    ap.add_argument("--virtual-args", default="",
                    help="extra arguments of the virtual robot (or, with --link sts, of the bus "
                         "emulator), e.g. '--corrupt 0.01' or '--fault overheat'")
    return ap


def start_virtual_robot(extra: list[str], module: str = "deploy.sim.virtual_robot",
                        keys: tuple[str, ...] = ("PORT",)) -> tuple[subprocess.Popen, str]:
    """Start ``python -m <module>`` (the virtual robot, or the STS bus emulator) and read the
    ``KEY value`` lines it prints first.

    Returns:
        ``(process, port)``; the values of the other ``keys`` are in ``process.robot_lines``.

    Raises:
        RuntimeError: if it exits without printing its lines.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *extra],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
        start_new_session=True,  # a terminal's Ctrl-C reaches the host only; it stops the robot
    )
    assert proc.stdout is not None
    lines: dict[str, str] = {}
    for key in keys:
        line = proc.stdout.readline()
        if not line.startswith(key + " "):
            proc.kill()
            raise RuntimeError(
                f"{module} did not start (exit {proc.poll()}, said {line!r}); it needs mujoco "
                "and the envs package: pip install -e '.[train]'"
            )
        lines[key] = line.split(maxsplit=1)[1].strip()
    proc.robot_lines = lines  # type: ignore[attr-defined]
    return proc, lines[keys[0]]


def open_link(args: argparse.Namespace, port: str, imu_port: str | None,
              calibration: Path | None):
    """The :class:`~deploy.robot_link.RobotLink` that ``--link`` names.

    Raises:
        LinkError: the port cannot be opened, the SDK is missing, the calibration is refused.
    """
    if args.link == "v1":
        return SerialLink(port, args.baud or DEFAULT_BAUD)
    from deploy.calibration import DEFAULT_CALIBRATION_PATH, Calibration, CalibrationError
    from deploy.sts import StsBusLink

    try:
        cal = Calibration.load(calibration or DEFAULT_CALIBRATION_PATH)
    except CalibrationError as exc:
        raise LinkError(str(exc)) from exc
    if imu_port is None:
        raise LinkError("--link sts needs --imu-port DEVICE (the BNO08x in UART-RVC mode): the "
                        "policy observes the body's orientation and angular velocity")
    return StsBusLink(port, cal, imu_port, baud=args.baud)


def open_command_source(args: argparse.Namespace, policy: OnnxPolicy, policy_path: Path):
    """The :class:`~deploy.commands.CommandSource` that the flags name (``--command`` by default).

    Raises:
        CommandSourceError: a live source for a policy trained on one command, an unreadable
            schedule, evdev missing or no gamepad, a keyboard that cannot be read.
    """
    env_kwargs = policy.metadata.get("env_kwargs") or {}
    live = ("keyboard" if args.keyboard else "gamepad" if args.gamepad is not None
            else "schedule" if args.command_schedule is not None else None)
    if live:  # refuse before opening anything (the error names why and what to do)
        refuse_live_commands(env_kwargs, live, str(policy_path))
    limits = policy_command_ranges(policy.metadata)
    if args.keyboard:
        # SIGHUP ends the run (run_deploy's StopSignals), whatever the command source: a robot
        # whose operator's SSH session dropped must not stand on with torque on.
        return KeyboardCommand(limits=limits, handle_sighup=False)
    if args.gamepad is not None:
        return open_gamepad(None if args.gamepad == "auto" else args.gamepad, limits)
    if args.command_schedule is not None:
        return ScheduleCommand(args.command_schedule)
    return FixedCommand(args.command or (0.0, 0.0, 0.0))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``robotac deploy`` and ``python -m deploy``; returns the exit status."""
    args = build_parser().parse_args(argv)
    policy_path = args.policy
    if policy_path is None:
        if not DEFAULT_POLICY.is_file():
            print(f"robotac deploy: no --policy given and the pretrained policy {DEFAULT_POLICY} "
                  "does not exist; export one with `robotac export --run RUN_DIR`",
                  file=sys.stderr)
            return 1
        policy_path = DEFAULT_POLICY
    if not args.virtual and not args.port:
        print("robotac deploy: give --port DEVICE (e.g. /dev/ttyACM0) or --virtual",
              file=sys.stderr)
        return 1
    try:
        policy = OnnxPolicy(policy_path)
    except PolicyError as exc:
        print(f"robotac deploy: {exc}", file=sys.stderr)
        return 1
    rate_hz = args.rate_hz or 1.0 / policy.interface.control_period_s
    if abs(rate_hz * policy.interface.control_period_s - 1.0) > 1e-6:
        print(f"warning: control rate {rate_hz} Hz differs from the policy's "
              f"{1.0 / policy.interface.control_period_s:g} Hz", file=sys.stderr)
    try:
        safety = SafetyConfig(max_rate_rad_s=args.max_rate_rad_s,
                              tilt_limit_rad=math.radians(args.tilt_limit_deg),
                              ramp_s=args.ramp_s, hold_s=args.hold_s, lower_s=args.lower_s)
        config = LoopConfig(rate_hz=rate_hz, duration_s=args.duration_s,
                            command=args.command or (0.0, 0.0, 0.0), safety=safety,
                            log_path=args.log, rt_priority=args.rt_priority,
                            fresh_state=args.fresh_state,
                            **({"command_max_rate": args.command_max_rate}
                               if args.command_max_rate else {}))
        source = open_command_source(args, policy, policy_path)
    except (ValueError, CommandSourceError) as exc:
        print(f"robotac deploy: {exc}", file=sys.stderr)
        return 1

    def _terminate(signum: int, frame: object) -> None:
        # Before and after the run (starting the virtual robot, opening the port): nothing is
        # powered yet, so end like Ctrl-C through the ``finally:`` below, which cleans up. During
        # the run, run_deploy's StopSignals own these signals and stop the robot first.
        raise KeyboardInterrupt

    for name in ("SIGTERM", "SIGHUP", "SIGQUIT"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _terminate)
    robot_proc = None
    port = args.port
    imu_port, calibration = args.imu_port, args.calibration
    tmp_dir = None
    # The robot: --robot, else the one the policy was trained with (a name, or the description
    # folder its env kwargs name, which the virtual robot can load; this host never does).
    sim_robot = args.robot or (policy.metadata.get("env_kwargs") or {}).get("robot")
    if args.robot and "/" not in args.robot and args.robot != policy.robot_name:
        print(f"robotac deploy: refused: policy {str(policy_path)!r} was trained for robot "
              f"{policy.robot_name!r}, but --robot says this is robot {args.robot!r}",
              file=sys.stderr)
        return 1
    robot_args = ["--robot", str(sim_robot)] if sim_robot else []
    try:
        if args.virtual and args.link == "sts":
            extra = ["--mode", args.virtual_mode, *robot_args, *args.virtual_args.split()]
            if calibration is None:
                tmp_dir = tempfile.TemporaryDirectory(prefix="robotac_sts_")
                extra += ["--write-calibration", str(Path(tmp_dir.name) / "calibration.json")]
            keys = ("PORT", "IMU", "CALIBRATION") if calibration is None else ("PORT", "IMU")
            robot_proc, port = start_virtual_robot(extra, "deploy.sim.sts_emulator", keys)
            lines = robot_proc.robot_lines  # type: ignore[attr-defined]
            imu_port = lines["IMU"]
            calibration = Path(lines["CALIBRATION"]) if "CALIBRATION" in lines else calibration
            print(f"STS bus emulator on {port}, IMU on {imu_port}, calibration {calibration} "
                  f"(pid {robot_proc.pid})")
        elif args.virtual:
            extra = ["--mode", args.virtual_mode, *robot_args, *args.virtual_args.split()]
            robot_proc, port = start_virtual_robot(extra)
            print(f"virtual robot on {port} (pid {robot_proc.pid})")
        try:
            link = open_link(args, port, imu_port, calibration)
        except LinkError as exc:
            print(f"robotac deploy: {exc}", file=sys.stderr)
            return 1
        print(f"policy {policy_path} ({policy.metadata.get('algo')}, "
              f"{policy.metadata.get('env_id')}) -> {port} (link {args.link}) at {rate_hz:g} Hz "
              f"for "
              f"{args.duration_s:g} s, command {source.name}")
        if isinstance(source, KeyboardCommand):
            print(f"keys: W/S or up/down = vx +-{KEY_STEPS[0]:g} m/s, A/D or left/right = vy "
                  f"+-{KEY_STEPS[1]:g} m/s, Q/E = yaw rate +-{KEY_STEPS[2]:g} rad/s, space = "
                  "stop, Ctrl-C = end the run")
        if isinstance(source, ScheduleCommand) and source.duration_s > args.duration_s:
            print(f"warning: the schedule's last row starts at {source.duration_s:g} s, after "
                  f"the policy phase ends ({args.duration_s:g} s)", file=sys.stderr)
        # The host's model of the robot: an STS bus's calibration carries it; over protocol v1
        # it is the policy's (OnnxPolicy.robot_interface), checked against the robot's INFO.
        host_robot = getattr(link, "interface", None) or policy.robot_interface()
        try:
            result = run_deploy(link, policy, config, commands=source, robot=host_robot)
        except (PolicyError, LinkError, CommandSourceError) as exc:
            print(f"robotac deploy: refused: {exc}", file=sys.stderr)
            return 1
        finally:
            link.close()
    finally:
        source.close()
        if robot_proc is not None:
            robot_proc.terminate()
            try:
                robot_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                robot_proc.kill()
        if tmp_dir is not None:
            tmp_dir.cleanup()
    s = result.summary
    print(f"stop: {result.stop_reason}; robot left {result.stopped_with}")
    if s.get("lowering"):
        print(f"stop: {s['lowering']}")
    if s.get("steps"):
        print(f"policy steps {s['steps']}, achieved {s['achieved_rate_hz']:.2f} Hz, period "
              f"p50/p99/max {s['period_ms_p50']:.3f}/{s['period_ms_p99']:.3f}/"
              f"{s['period_ms_max']:.3f} ms, jitter p99 {s['jitter_ms_p99']:.3f} ms, deadline "
              f"misses {s['deadline_misses']}")
        print(f"inference p50/p99 {s['inference_ms_p50']:.3f}/{s['inference_ms_p99']:.3f} ms, "
              f"round trip p50/p99 {s['rtt_ms_p50']:.3f}/{s['rtt_ms_p99']:.3f} ms, drops "
              f"{s['drops']}, error replies {s['error_replies']}, link {s['link']}")
    f = s.get("action_filter", {})
    print(f"action filter alpha {f.get('alpha')}, max rate {f.get('max_rate_rad_s')} rad/s; "
          f"command {s.get('command_source')}: clipped {s.get('command_clipped_steps')} steps, "
          f"rate limited {s.get('command_rate_limited_steps')} steps")
    for event in s.get("command_events", []):
        print(f"command event: {event}")
    if result.log_path:
        print(f"log: {result.log_path}")
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.summary.with_name(args.summary.name + ".tmp")
        tmp.write_text(json.dumps(s, indent=1))
        os.replace(tmp, args.summary)
    stop_signal = s.get("stop_signal")
    if stop_signal:  # the shell's convention for a process ended by a signal: 128 + its number
        return 128 + int(getattr(signal, stop_signal))
    if result.stop_reason.startswith("interrupted"):
        return 130
    return 0 if result.ok else 2
