"""``robotac`` command line: ``train``, ``eval``, ``export``, ``deploy``.

Examples::

    robotac train --env Pendulum-v1 --algo sac --total-steps 8000 --learning-starts 1000
    robotac train --config recipes/quadruped_sac.yaml --seed 2      # recipe, then overrides
    robotac train --resume runs/Pendulum-v1__sac__s1__20261121-151500 [--total-steps 20000]
    robotac eval --run runs/... --episodes 10 --which best
    robotac export --run runs/... [--out policy.onnx]              # robotac.export
    robotac deploy --virtual [--policy FILE] [--link v1|sts]        # deploy.cli
    robotac calibrate --port /dev/ttyUSB0 --imu-port /dev/ttyUSB1   # deploy.calibrate (STS)
    robotac identify --port /dev/ttyUSB0 | --virtual | --recording F  # robotac.identify
    robotac sweep sweep.yaml [--storage URL --study NAME] [--n-trials N]  # robotac.sweep
    robotac robot check envs/robots/quadruped                      # envs.robot_check
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from robotac.registry import ALGORITHMS

__all__ = ["main", "parse_train_args", "train_main", "eval_main", "robot_main"]

#: "SAC, TD3, DDPG, CrossQ", from the algorithm registry.
_ALGOS_TEXT = ", ".join(spec.title for spec in ALGORITHMS.values())

USAGE = f"""usage: robotac {{train,eval,export,deploy,calibrate,identify,sweep,robot}} [options]

  train   {"train " + _ALGOS_TEXT:<32}(robotac train --help)
  eval    deterministic returns of a run  (robotac eval --help)
  export  export a run's actor to ONNX    (robotac export --help)
  deploy  run a policy on a robot         (robotac deploy --help)
  calibrate  calibrate an STS servo-bus robot (robotac calibrate --help)
  identify   fit the servo model to the robot's servos (robotac identify --help)
  sweep   Optuna hyperparameter sweep     (robotac sweep --help)
  robot   check a robot description       (robotac robot check PATH)
"""


def _headless_gl() -> None:
    """Pick OSMesa for MuJoCo rendering when no display exists (before mujoco is imported)."""
    if not os.environ.get("DISPLAY") and "MUJOCO_GL" not in os.environ:
        os.environ["MUJOCO_GL"] = "osmesa"
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def parse_train_args(argv: list[str]):
    """Parse ``train`` arguments into a :class:`~robotac.config.TrainConfig`.

    ``--config FILE`` (YAML or JSON recipe) sets the defaults, ``--resume DIR`` takes them from
    the run's ``config.json``; every other flag then overrides them (tyro).

    Raises:
        ConfigError: for a missing or malformed recipe file.
    """
    import tyro

    from robotac.config import TrainConfig, from_dict, load_config_file

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    pre.add_argument("--resume", default=None)
    known, rest = pre.parse_known_args(argv)
    default = TrainConfig()
    if known.config:
        default = load_config_file(known.config)
    if known.resume:
        cfg_file = Path(known.resume) / "config.json"
        if cfg_file.is_file():
            saved = json.loads(cfg_file.read_text())
            saved.pop("robotac_version", None)
            default = from_dict(saved)
        rest = [*rest, "--resume", known.resume]
    return tyro.cli(
        TrainConfig,
        args=rest,
        default=default,
        prog="robotac train",
        description=f"Train {_ALGOS_TEXT}. --config FILE.yaml loads a recipe whose values "
        "the other flags override; --resume DIR continues a run exactly.",
    )


def train_main(argv: list[str]) -> int:
    """``robotac train``: parse, train, print where the outputs are."""
    from robotac.train import train

    cfg = parse_train_args(argv)
    result = train(cfg)
    print(f"run directory: {result.run_dir}")
    if result.stopped_early:
        print(f"stopped at step {result.global_step}; continue with: robotac train --resume "
              f"{result.run_dir}")
    else:
        print(f"final evaluation return {result.final_eval_return:.1f}, best "
              f"{result.best_eval_return:.1f}")
        print(f"TensorBoard: tensorboard --logdir {result.run_dir / 'tb'}")
        if result.learning_sps:
            print(f"training speed after learning_starts: {result.learning_sps:.1f} env steps/s")
    return 0


def eval_main(argv: list[str]) -> int:
    """``robotac eval --run DIR [--episodes N] [--which best|latest|step_N] [--seed S]``."""
    from robotac.checkpoint import which_arg

    p = argparse.ArgumentParser(prog="robotac eval",
                                description="Deterministic returns of a trained policy.")
    p.add_argument("--run", required=True, help="run directory (or a checkpoint .pt file)")
    p.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    p.add_argument("--which", type=which_arg, default="best",
                   help="checkpoint: best, latest or step_N (kept with keep_every)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be >= 1")

    import numpy as np

    from robotac.checkpoint import load_policy
    from robotac.env_utils import make_env
    from robotac.train import evaluate

    bundle = load_policy(args.run, args.which)
    env = make_env(bundle.env_id, **bundle.env_kwargs)
    returns = evaluate(bundle.actor, bundle.obs_norm, env, args.episodes, args.seed)
    env.close()
    print(f"{bundle.algo} on {bundle.env_id} ({args.which}, trained {bundle.global_step} steps): "
          f"mean return {returns.mean():.2f} +- {returns.std():.2f} over {args.episodes} "
          f"episodes (min {returns.min():.2f}, max {returns.max():.2f})")
    print("returns: " + " ".join(f"{r:.2f}" for r in np.asarray(returns)))
    return 0


def robot_main(argv: list[str]) -> int:
    """``robotac robot check PATH``: validate a robot description before training.

    Prints one line per problem, each naming the ``robot.yaml`` field (exit status 1), or the
    robot's total mass, leg length and stand height (exit status 0); see
    :mod:`envs.robot_check` and ``docs/your_robot.md``.
    """
    p = argparse.ArgumentParser(prog="robotac robot", description="Robot descriptions.")
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("check", help="validate a description (robot.yaml + MJCF)",
                       description="Validate a robot description: the MJCF loads; the joints, "
                       "actuators, sensors and feet of robot.yaml exist; the limits map inside "
                       "the servo's range; the mirror pairs mirror the model; the default pose "
                       "stands for 5 s. One line per problem, naming the field.")
    c.add_argument("robot", help="a description folder (robot.yaml + MJCF) or a shipped "
                   "robot's name, e.g. quadruped")
    n = sub.add_parser("new", help="scaffold a description from an MJCF or URDF",
                       description="Scaffold envs/robots/NAME/ (or --out) from a CAD export "
                       "(MJCF or URDF): find the base, legs, joints and feet, add the floor, "
                       "actuators, sensors and IMU site the export lacks, write robot.yaml with "
                       "FILL_IN where a value must be measured, then run the check.")
    n.add_argument("name", help="the robot's name")
    n.add_argument("--from", dest="source", required=True, help="FILE.xml (MJCF) or FILE.urdf")
    n.add_argument("--out", default=None, help="folder to write (default envs/robots/NAME)")
    n.add_argument("--force", action="store_true", help="overwrite an existing description")
    c.add_argument("--image", default=None, help="also render the robot standing to this PNG")
    args = p.parse_args(argv)
    from envs.robot_check import check_robot

    if args.action == "new":
        from envs.robot_new import ScaffoldError, scaffold

        try:
            made = scaffold(args.name, args.source, args.out, force=args.force)
        except ScaffoldError as exc:
            print(f"robotac robot new: {exc}", file=sys.stderr)
            return 1
        print(made.message())
        report = check_robot(made.folder)
        print(report.message())
        if not report.ok:
            print(f"fill in the FILL_IN values of {made.folder / 'robot.yaml'}, then run: "
                  f"robotac robot check {made.folder}")
        return 0
    report = check_robot(args.robot)
    print(report.message(), file=sys.stdout if report.ok else sys.stderr)
    if report.ok and args.image:
        from envs.robot_check import render_robot

        print(render_robot(report.description, args.image))
    return 0 if report.ok else 1


def _delegate(module: str, argv: list[str], what: str) -> int:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.startswith(e.name):
            print(f"robotac {what}: {module} is not available in this installation",
                  file=sys.stderr)
            return 2
        raise
    return int(mod.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``robotac`` console script. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    _headless_gl()
    from robotac.checkpoint import CheckpointError
    from robotac.config import ConfigError
    from robotac.env_utils import EnvError
    from robotac.train import RunDirError

    try:
        if cmd == "train":
            return train_main(rest)
        if cmd == "eval":
            return eval_main(rest)
        if cmd == "export":
            return _delegate("robotac.export", rest, "export")
        if cmd == "deploy":
            return _delegate("deploy.cli", rest, "deploy")
        if cmd == "calibrate":
            return _delegate("deploy.calibrate", rest, "calibrate")
        if cmd == "identify":
            return _delegate("robotac.identify", rest, "identify")
        if cmd == "sweep":
            return _delegate("robotac.sweep", rest, "sweep")
        if cmd == "robot":
            return robot_main(rest)
    except (ConfigError, EnvError, RunDirError, CheckpointError) as e:
        print(f"robotac {cmd}: error: {e}", file=sys.stderr)
        return 2
    print(f"robotac: unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
