"""``robotac deploy`` / ``python -m deploy``: run an exported policy on a robot over a serial port.

    python -m deploy --policy policy.onnx --port /dev/ttyACM0 [--baud 1000000] [--rate-hz 50]
                     [--duration-s 10] [--command 0.5,0,0] [--log run.npz]
    python -m deploy --virtual [--policy FILE] ...   # start the virtual robot, connect via its pty

Needs only the base dependencies (numpy, onnxruntime, pyserial, cobs); ``--virtual`` also needs
mujoco in the virtual robot's process. Exit status: 0 run completed, 1 could not start (bad
policy, port, mismatch), 2 stopped on a fault, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

from deploy.link import DEFAULT_BAUD, LinkError, SerialLink
from deploy.loop import LoopConfig, run_deploy
from deploy.policy import OnnxPolicy, PolicyError
from deploy.safety import SafetyConfig

__all__ = ["main", "build_parser", "DEFAULT_POLICY", "start_virtual_robot"]

#: The shipped pretrained policy, used when ``--policy`` is omitted.
DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "policies" / "pretrained" / (
    "quadruped_sac.onnx"
)


def _command(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"--command must be three numbers VX,VY,YAW (m/s, m/s, rad/s), got {text!r}"
        )
    return values  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="robotac deploy",
        description="Drive a robot with an exported ONNX policy over robot link protocol v1.",
    )
    ap.add_argument("--policy", type=Path, default=None,
                    help=f"exported .onnx policy (default: {DEFAULT_POLICY} when it exists)")
    target = ap.add_mutually_exclusive_group()
    target.add_argument("--port", default=None, help="serial device, e.g. /dev/ttyACM0")
    target.add_argument("--virtual", action="store_true",
                        help="start the virtual robot (MuJoCo) and connect through its pty")
    ap.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="baud rate (default 1000000)")
    ap.add_argument("--rate-hz", type=float, default=None,
                    help="control rate [Hz] (default: the policy's, 1 / control period)")
    ap.add_argument("--duration-s", type=float, default=10.0,
                    help="length of the policy phase [s], after ramp and hold")
    ap.add_argument("--command", type=_command, default=(0.0, 0.0, 0.0),
                    help="velocity command VX,VY,YAW_RATE [m/s, m/s, rad/s] (default 0,0,0)")
    ap.add_argument("--log", type=Path, default=None, help="per-step log (.npz)")
    ap.add_argument("--summary", type=Path, default=None, help="write the summary here (JSON)")
    ap.add_argument("--ramp-s", type=float, default=2.0, help="ramp to the default pose [s]")
    ap.add_argument("--hold-s", type=float, default=1.0, help="hold the default pose [s]")
    ap.add_argument("--max-rate-rad-s", type=float, default=SafetyConfig.max_rate_rad_s,
                    help="per-joint target rate limit [rad/s]")
    ap.add_argument("--tilt-limit-deg", type=float, default=60.0,
                    help="ESTOP when the body tilts more than this [deg]")
    ap.add_argument("--rt-priority", type=int, default=0,
                    help="run the loop under SCHED_FIFO at this priority (1-99, Linux, root or "
                         "CAP_SYS_NICE); 0 = default scheduler")
    ap.add_argument("--virtual-mode", choices=("realtime", "stepped"), default="realtime",
                    help="virtual robot physics: wall clock, or one control period per COMMAND")
    ap.add_argument("--virtual-args", default="",
                    help="extra arguments of the virtual robot, e.g. '--corrupt 0.01'")
    return ap


def start_virtual_robot(extra: list[str]) -> tuple[subprocess.Popen, str]:
    """Start ``python -m deploy.virtual_robot`` and read the pty path it prints.

    Raises:
        RuntimeError: if it exits without printing its ``PORT`` line.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.virtual_robot", *extra],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
        start_new_session=True,  # a terminal's Ctrl-C reaches the host only; it stops the robot
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(
            f"virtual robot did not start (exit {proc.poll()}, said {line!r}); it needs mujoco "
            "and the envs package: pip install -e '.[train]'"
        )
    return proc, line.split(maxsplit=1)[1].strip()


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
                              ramp_s=args.ramp_s, hold_s=args.hold_s)
        config = LoopConfig(rate_hz=rate_hz, duration_s=args.duration_s, command=args.command,
                            safety=safety, log_path=args.log, rt_priority=args.rt_priority)
    except ValueError as exc:
        print(f"robotac deploy: {exc}", file=sys.stderr)
        return 1

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: through the loop's finally

    signal.signal(signal.SIGTERM, _terminate)
    robot_proc = None
    port = args.port
    try:
        if args.virtual:
            extra = ["--mode", args.virtual_mode, *args.virtual_args.split()]
            robot_proc, port = start_virtual_robot(extra)
            print(f"virtual robot on {port} (pid {robot_proc.pid})")
        try:
            link = SerialLink(port, args.baud)
        except LinkError as exc:
            print(f"robotac deploy: {exc}", file=sys.stderr)
            return 1
        print(f"policy {policy_path} ({policy.metadata.get('algo')}, "
              f"{policy.metadata.get('env_id')}) -> {port} at {rate_hz:g} Hz for "
              f"{args.duration_s:g} s, command {args.command}")
        try:
            result = run_deploy(link, policy, config)
        except (PolicyError, LinkError) as exc:
            print(f"robotac deploy: refused: {exc}", file=sys.stderr)
            return 1
        finally:
            link.close()
    finally:
        if robot_proc is not None:
            robot_proc.terminate()
            try:
                robot_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                robot_proc.kill()
    s = result.summary
    print(f"stop: {result.stop_reason}; robot left {result.stopped_with}")
    if s.get("steps"):
        print(f"policy steps {s['steps']}, achieved {s['achieved_rate_hz']:.2f} Hz, period "
              f"p50/p99/max {s['period_ms_p50']:.3f}/{s['period_ms_p99']:.3f}/"
              f"{s['period_ms_max']:.3f} ms, jitter p99 {s['jitter_ms_p99']:.3f} ms, deadline "
              f"misses {s['deadline_misses']}")
        print(f"inference p50/p99 {s['inference_ms_p50']:.3f}/{s['inference_ms_p99']:.3f} ms, "
              f"round trip p50/p99 {s['rtt_ms_p50']:.3f}/{s['rtt_ms_p99']:.3f} ms, drops "
              f"{s['drops']}, error replies {s['error_replies']}, link {s['link']}")
    if result.log_path:
        print(f"log: {result.log_path}")
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.summary.with_name(args.summary.name + ".tmp")
        tmp.write_text(json.dumps(s, indent=1))
        os.replace(tmp, args.summary)
    if result.stop_reason.startswith("interrupted"):
        return 130
    return 0 if result.ok else 2
