"""``deploy`` imports and runs with torch, mujoco, gymnasium and pyyaml unimportable (a subprocess).

The host process gets a meta-path blocker that makes ``import torch`` (and mujoco, gymnasium,
dm_control, policies, robotac) fail as on a robot computer with only the base dependencies; the
virtual robot runs in a normal process beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from deploy_test_helpers import ROOT, assert_targets_within_limits

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, runpy, sys
    BLOCKED = ("torch", "mujoco", "gymnasium", "dm_control", "policies", "robotac", "tyro", "yaml")
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None
    sys.meta_path.insert(0, Blocker())
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("blocker failed")
    sys.argv = ["python -m deploy", *sys.argv[1:]]
    runpy.run_module("deploy", run_name="__main__", alter_sys=True)
    """
)

IMPORTS = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = ("torch", "mujoco", "gymnasium", "dm_control", "policies", "robotac", "yaml")
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
    sys.meta_path.insert(0, Blocker())
    import deploy.cli, deploy.link, deploy.loop, deploy.policy, deploy.protocol, deploy.safety
    import deploy.robot_link, deploy.sts, deploy.calibration, deploy.imu, deploy.calibrate
    import deploy.commands, deploy.identify
    print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
    """
)


def test_deploy_modules_import_without_torch_or_mujoco():
    out = subprocess.run([sys.executable, "-c", IMPORTS], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_deploy_runs_without_torch_or_mujoco(virtual_robot, standing_policy, tmp_path):
    robot = virtual_robot()
    summary = tmp_path / "summary.json"
    out = subprocess.run(
        [sys.executable, "-c", BLOCKER, "--policy", str(standing_policy), "--port", robot.port,
         "--duration-s", "1", "--ramp-s", "0.3", "--hold-s", "0.2", "--log",
         str(tmp_path / "log.npz"), "--summary", str(summary)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    rec = robot.stop()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "run completed" in out.stdout and "robot left passive" in out.stdout
    s = json.loads(summary.read_text())
    # Steps, not a rate: how many of the 50 periods a busy machine keeps is not this test's.
    assert s["steps"] >= 1 and s["fault"] is None
    assert {"achieved_rate_hz", "deadline_misses", "overruns", "skipped_periods"} <= s.keys()
    assert (tmp_path / "log.npz").is_file()
    assert rec["position_commands"] >= s["steps"] and rec["passive"]  # every run step's arrived
    assert_targets_within_limits(rec)


def test_cli_errors_are_clear(tmp_path, standing_policy):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "deploy", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    r = run("--policy", str(standing_policy), "--port", "/dev/no-such-tty")
    assert r.returncode == 1 and "cannot open serial port '/dev/no-such-tty'" in r.stderr
    r = run("--policy", str(tmp_path / "missing.onnx"), "--port", "/dev/null")
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = run("--policy", str(standing_policy))
    assert r.returncode == 1 and "--port" in r.stderr
    r = run("--policy", str(standing_policy), "--port", "x", "--command", "1,2")
    assert r.returncode == 2 and "VX,VY,YAW" in r.stderr


def test_cli_virtual_and_ctrl_c_leave_the_robot_passive(standing_policy, tmp_path):
    import signal

    from deploy_test_helpers import wait_for_run_phase

    report = tmp_path / "robot.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy", "--virtual", "--policy", str(standing_policy),
         "--duration-s", "60", "--ramp-s", "0.3", "--hold-s", "0.2",
         "--virtual-args", f"--report {report} --report-every-s 0.05"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell's background job (nohup, `cmd &`) inherits SIGINT ignored, and Python then
        # installs no KeyboardInterrupt handler: give the child the default, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline().startswith("virtual robot on /dev/pts/")
    # Ctrl-C in the run phase, seen on the robot's side (its report), not after a sleep that a
    # busy machine's start-up can outlast; the 60 s duration only bounds a hang.
    running = wait_for_run_phase(report, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "interrupted by the operator" in out and "robot left passive" in out
    rec = json.loads(report.read_text())
    assert rec["passive"] and rec["passive_commands"] == 1
    assert rec["position_commands"] >= running["position_commands"] >= 1
    assert_targets_within_limits(rec)
