"""Checkpoints: atomic writes, checked loads, and :func:`load_policy` for export and evaluation.

A checkpoint is one ``torch.save`` file holding only tensors, numbers, strings, lists and dicts
(so it loads with ``weights_only=True``):

* ``format``: :data:`FORMAT`; ``kind``: ``"latest"`` (everything to resume), ``"best"`` or
  ``"step"`` (a checkpoint kept at a step, ``keep_every``; these two have no replay buffer and
  no loop state);
* ``meta``: ``algo``, ``env_id``, ``env_kwargs``, ``obs_dim``, ``action_low``, ``action_high``,
  ``interface`` (robot interface dict or None), ``config`` (resolved training config),
  ``global_step``, ``eval_return`` (mean deterministic return at the time, or None);
* ``algo``: networks, target networks, optimizers, ``log_alpha`` / noise state, update count;
* ``obs_norm``: the normalizer's ``state_dict``;
* ``buffer`` and ``loop`` (``latest`` only): replay buffer, counters, RNG states, env replay logs.

Files are written to a temporary file in the same directory, flushed, fsynced and renamed over the
target (``os.replace``), so a crash never leaves a half-written checkpoint (DESIGN.md contract 5).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from policies.export import default_file_mode
from policies.networks import (
    DeterministicActor,
    RunningNorm,
    SquashedGaussianActor,
    deterministic_action,
)
from robotac import registry

__all__ = [
    "FORMAT",
    "CheckpointError",
    "PolicyBundle",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "kept_steps",
    "which_arg",
    "load_policy",
    "build_actor",
]

FORMAT = "robotac-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another env or algorithm."""


#: ``which`` names a run's checkpoint: ``best``, ``latest``, or ``step_N`` (kept at env step N).
WHICH_PATTERN = re.compile(r"best|latest|step_[0-9]+")


def checkpoint_path(run_dir: str | Path, which: str) -> Path:
    """``run_dir/checkpoints/{which}.pt``.

    Args:
        run_dir: Run directory.
        which: ``"best"``, ``"latest"`` or ``"step_N"``, the policy kept at env step ``N``
            (config ``keep_every``; :func:`kept_steps` lists them).

    Raises:
        ValueError: if ``which`` is none of these.
    """
    if not WHICH_PATTERN.fullmatch(str(which)):
        raise ValueError(f"which must be 'best', 'latest' or 'step_N' (a checkpoint kept at env "
                         f"step N, config keep_every), got {which!r}")
    return Path(run_dir) / "checkpoints" / f"{which}.pt"


def which_arg(text: str) -> str:
    """``argparse`` type of a ``--which`` option: ``text`` if it names a checkpoint
    (:data:`WHICH_PATTERN`).

    Raises:
        argparse.ArgumentTypeError: naming the accepted forms.
    """
    import argparse

    if not WHICH_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a checkpoint: give best, latest or step_N (kept at env step N "
            "with config keep_every)")
    return text


def kept_steps(run_dir: str | Path) -> list[int]:
    """The env steps at which ``run_dir`` kept a checkpoint (``checkpoints/step_N.pt``, written
    every ``keep_every`` steps), ascending; ``[]`` if none."""
    found = (re.fullmatch(r"step_([0-9]+)\.pt", f.name)
             for f in (Path(run_dir) / "checkpoints").glob("step_*.pt"))
    return sorted(int(m.group(1)) for m in found if m)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file in its dir, then ``os.replace``).

    The file gets the usual mode (``0o666`` less the umask, 0644 by default), not ``mkstemp``'s
    0600, so another user or a deploy service can read it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint file.

    Raises:
        CheckpointError: if the file does not exist, cannot be unpickled (truncated or corrupt),
            or is not a robotac checkpoint of format :data:`FORMAT`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated and cannot be read ({type(e).__name__}: "
            f"{str(e)[:200]}); use the other checkpoint (best/latest) of the run"
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (found {found!r})")
    return ckpt


def check_matches(ckpt: dict[str, Any], path: str | Path, env_id: str | None, algo: str | None):
    """Refuse a checkpoint made for another env or algorithm.

    Raises:
        CheckpointError: naming the checkpoint's and the requested env id / algorithm.
    """
    meta = ckpt["meta"]
    if env_id is not None and meta["env_id"] != env_id:
        raise CheckpointError(
            f"checkpoint {path} was trained on env {meta['env_id']!r}, not {env_id!r}"
        )
    if algo is not None and meta["algo"] != algo:
        raise CheckpointError(
            f"checkpoint {path} was trained with algorithm {meta['algo']!r}, not {algo!r}"
        )


def obs_clip_of(config: dict[str, Any]) -> float:
    """The normalizer's clip for a config: ``obs_clip``, or ``inf`` without normalization (the
    normalizer then stays the identity and must not clip raw observations)."""
    return float(config["obs_clip"]) if config.get("normalize_obs", True) else math.inf


#: The actor class of each :attr:`robotac.registry.AlgoSpec.actor` kind.
ACTOR_CLASSES = {"squashed_gaussian": SquashedGaussianActor, "deterministic": DeterministicActor}


def build_actor(meta: dict[str, Any]) -> DeterministicActor | SquashedGaussianActor:
    """A fresh actor of the checkpoint's algorithm, sizes and bounds (weights not loaded).

    The actor's class is the one its algorithm trains (:attr:`robotac.registry.AlgoSpec.actor`),
    its widths the config's ``hidden`` (the critics' may differ, ``critic_hidden``).

    Raises:
        CheckpointError: if the checkpoint names an algorithm this robotac does not know.
    """
    hidden = tuple(meta["config"]["hidden"])
    try:
        spec = registry.get(str(meta["algo"]))
    except ValueError as e:
        raise CheckpointError(f"checkpoint of an unknown algorithm: {e}") from None
    cls = ACTOR_CLASSES[spec.actor]
    return cls(int(meta["obs_dim"]), meta["action_low"], meta["action_high"], hidden)


@dataclass
class PolicyBundle:
    """A trained policy and what is needed to run it.

    Attributes:
        actor: Actor in eval mode on CPU; ``actor.deterministic(obs_normalized)`` maps
            ``(batch, obs_dim)`` float32 normalized observations to ``(batch, act_dim)`` actions
            in env units, within ``[action_low, action_high]``.
        obs_norm: Frozen observation normalizer, ``obs_norm(raw_obs) -> normalized obs``.
        algo: Algorithm name (:data:`robotac.registry.ALGO_NAMES`).
        env_id: Env id the policy was trained on.
        env_kwargs: Keyword arguments of that env.
        obs_dim: Observation size.
        action_low, action_high: ``(act_dim,)`` float32 action bounds.
        interface: The env's robot interface (``RobotInterface.to_dict()``) or None.
        config: Resolved training config as a dict.
        global_step: Env steps trained when the checkpoint was written.
        eval_return: Mean deterministic evaluation return at that time, or None.
    """

    actor: nn.Module
    obs_norm: RunningNorm
    algo: str
    env_id: str
    env_kwargs: dict
    obs_dim: int
    action_low: np.ndarray
    action_high: np.ndarray
    interface: dict | None
    config: dict
    global_step: int = 0
    eval_return: float | None = None

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action for raw ``obs`` ``(obs_dim,)`` or ``(batch, obs_dim)``: float32
        ``(act_dim,)`` or ``(batch, act_dim)`` (:func:`policies.networks.deterministic_action`)."""
        return deterministic_action(self.actor, self.obs_norm, obs)


def load_policy(run_dir: str | Path, which: str = "best") -> PolicyBundle:
    """Load the actor and normalizer of a run (``run_dir/checkpoints/{which}.pt``).

    Args:
        run_dir: Run directory written by ``robotac train``, or a checkpoint ``.pt`` file.
        which: ``"best"`` (highest evaluation return), ``"latest"`` or ``"step_N"`` (kept at env
            step ``N``, config ``keep_every``).

    Raises:
        CheckpointError: if the checkpoint is missing or corrupt.
        ValueError: if ``which`` is none of these.
    """
    p = Path(run_dir)
    path = p if p.is_file() else checkpoint_path(p, which)
    ckpt = load_checkpoint(path)
    meta = ckpt["meta"]
    actor = build_actor(meta)
    try:
        actor.load_state_dict(ckpt["algo"]["modules"]["actor"])
        obs_norm = RunningNorm(int(meta["obs_dim"]), clip=obs_clip_of(meta["config"]))
        obs_norm.load_state_dict(ckpt["obs_norm"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} does not hold a matching actor: {e}") from e
    actor.eval()
    obs_norm.eval()
    return PolicyBundle(
        actor=actor,
        obs_norm=obs_norm,
        algo=str(meta["algo"]),
        env_id=str(meta["env_id"]),
        env_kwargs=dict(meta["env_kwargs"]),
        obs_dim=int(meta["obs_dim"]),
        action_low=np.asarray(meta["action_low"], dtype=np.float32),
        action_high=np.asarray(meta["action_high"], dtype=np.float32),
        interface=meta.get("interface"),
        config=dict(meta["config"]),
        global_step=int(meta.get("global_step", 0)),
        eval_return=meta.get("eval_return"),
    )
