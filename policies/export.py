"""Export a trained actor to one self-contained ONNX graph (DESIGN.md contract 3).

The graph maps the *raw* observation to the deterministic action in robot units:

    obs (batch, obs_dim) float32
      -> normalizer with frozen statistics: clip((obs - mean) / sqrt(var + eps), -clip, clip)
      -> actor.deterministic: a = low + (high - low) * (tanh(u) + 1) / 2, per dimension
      -> action (batch, act_dim) float32

with a dynamic batch axis, exported with ``torch.onnx.export(..., dynamo=True)`` (the
torch.export-based exporter, onnxscript) and checked by ``onnx.checker.check_model``. Metadata
travel as one JSON document in ``metadata_props`` under :data:`METADATA_KEY` (env id and kwargs,
robot interface with joint names, bounds, default pose and observation layout, control period,
training algorithm, robotac version, obs_dim), which ``deploy/`` reads to refuse a policy made for
another robot. The file is written atomically (temporary file, then rename).

Parity with the torch actor is measured with onnxruntime (:func:`onnx_parity`), never assumed.
"""

from __future__ import annotations

import copy
import datetime as _dt
import functools
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from policies.networks import RunningNorm, deterministic_action

__all__ = [
    "METADATA_KEY",
    "METADATA_FORMAT",
    "ExportedPolicy",
    "make_metadata",
    "export_onnx",
    "read_metadata",
    "onnx_session",
    "onnx_actions",
    "onnx_parity",
    "random_observations",
]

#: ``metadata_props`` key of the JSON metadata (``deploy.policy.METADATA_KEY`` reads the same).
METADATA_KEY = "robotac"
#: Version of the metadata document's schema.
METADATA_FORMAT = 1


class ExportedPolicy(nn.Module):
    """Frozen normalizer followed by the actor's deterministic action, as one module.

    The normalizer's statistics are copied into float32 buffers exactly as
    :meth:`RunningNorm.forward` casts them (``mean.float()``, ``sqrt(var + eps).float()``), so
    the graph computes the same numbers as ``deterministic_action(actor, obs_norm, obs)``.

    Args:
        actor: A ``DeterministicActor`` or ``SquashedGaussianActor`` (anything with
            ``.deterministic(obs_normalized) -> action`` in bounds); deep-copied, eval mode.
        obs_norm: The trained :class:`RunningNorm`; its statistics are frozen into the module.
    """

    def __init__(self, actor: nn.Module, obs_norm: RunningNorm):
        super().__init__()
        self.actor = copy.deepcopy(actor).eval().float()
        for p in self.actor.parameters():
            p.requires_grad_(False)
        self.register_buffer("obs_mean", obs_norm.mean.detach().to(torch.float32).clone())
        self.register_buffer(
            "obs_std",
            torch.sqrt(obs_norm.var.detach() + obs_norm.eps).to(torch.float32).clone(),
        )
        self.clip = float(obs_norm.clip)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(batch, obs_dim)`` float32 raw observation -> ``(batch, act_dim)`` float32 action."""
        x = torch.clamp((obs - self.obs_mean) / self.obs_std, -self.clip, self.clip)
        return self.actor.deterministic(x)


def make_metadata(
    *,
    env_id: str,
    algo: str,
    obs_dim: int,
    action_low: Sequence[float],
    action_high: Sequence[float],
    interface: dict[str, Any] | None,
    robotac_version: str,
    env_kwargs: dict[str, Any] | None = None,
    control_period_s: float | None = None,
    normalizer: RunningNorm | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the metadata document of contract 3.

    Args:
        env_id: Gymnasium id the policy was trained on, e.g. ``"robotac/Quadruped-v0"``.
        algo: Training algorithm, ``"sac"``, ``"td3"`` or ``"ddpg"``.
        obs_dim: Observation size.
        action_low, action_high: ``(act_dim,)`` action bounds [robot units, rad for servos].
        interface: ``RobotInterface.to_dict()`` of the robot, or ``None`` for an env without one.
        robotac_version: Package version that trained and exported the policy.
        env_kwargs: Keyword arguments of ``gymnasium.make``.
        control_period_s: Control period [s]; taken from ``interface`` when omitted.
        normalizer: The normalizer, to record its ``count``, ``clip`` and ``eps``.
        extra: More JSON-serialisable fields (e.g. the source run directory).

    Returns:
        A JSON-serialisable dict.

    Raises:
        ValueError: if the bounds' shapes differ or ``interface`` disagrees with them.
    """
    low = [float(x) for x in np.asarray(action_low, dtype=np.float64).reshape(-1)]
    high = [float(x) for x in np.asarray(action_high, dtype=np.float64).reshape(-1)]
    if len(low) != len(high):
        raise ValueError(f"action_low has {len(low)} entries, action_high {len(high)}")
    meta: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "env_id": env_id,
        "env_kwargs": dict(env_kwargs or {}),
        "algo": algo,
        "robotac_version": robotac_version,
        "obs_dim": int(obs_dim),
        "action_dim": len(low),
        "action_low": low,
        "action_high": high,
        "interface": interface,
        "joint_names": None,
        "default_pose_rad": None,
        "obs_layout": None,
        "control_period_s": control_period_s,
        "inputs": {"obs": "(batch, obs_dim) float32 raw observation (not normalized)"},
        "outputs": {"action": "(batch, action_dim) float32 deterministic action in robot units"},
        "exported_at_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if interface is not None:
        names = list(interface["joint_names"])
        if len(names) != len(low):
            raise ValueError(f"interface has {len(names)} joints but the action has {len(low)}")
        layout = interface["obs_layout"]
        layout_dim = sum(int(b["size"]) for b in layout["blocks"])
        if layout_dim != int(obs_dim):
            raise ValueError(
                f"interface layout {layout['version']!r} has {layout_dim} entries, obs_dim is "
                f"{obs_dim}"
            )
        meta["joint_names"] = names
        meta["default_pose_rad"] = list(interface["default_pose_rad"])
        meta["obs_layout"] = layout
        if control_period_s is None:
            meta["control_period_s"] = float(interface["control_period_s"])
    if normalizer is not None:
        meta["normalizer"] = {
            "count": float(normalizer.count),
            "clip": float(normalizer.clip),
            "eps": float(normalizer.eps),
        }
    meta.update(extra or {})
    json.dumps(meta)  # fail here, not in the exporter, if something is not serialisable
    return meta


def _export_graph(module: nn.Module, obs_dim: int, path: Path) -> str:
    """Export ``module`` to ``path``; returns the exporter used ("dynamo" or "torchscript")."""
    example = torch.zeros(2, obs_dim, dtype=torch.float32)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                program = torch.onnx.export(
                    module,
                    (example,),
                    input_names=["obs"],
                    output_names=["action"],
                    dynamic_shapes={"obs": {0: torch.export.Dim("batch")}},
                    dynamo=True,
                    verbose=False,
                )
                program.save(str(path))
                return "dynamo"
            except Exception as exc:  # noqa: BLE001 - fall back, and say so
                logging.getLogger(__name__).warning(
                    "dynamo ONNX export failed (%s: %s); falling back to dynamo=False",
                    type(exc).__name__, exc,
                )
                torch.onnx.export(
                    module,
                    (example,),
                    str(path),
                    input_names=["obs"],
                    output_names=["action"],
                    dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}},
                    dynamo=False,
                    opset_version=17,
                )
                return "torchscript"
    finally:
        quiet.setLevel(level)


def export_onnx(
    actor: nn.Module,
    obs_norm: RunningNorm,
    path: str | Path,
    metadata: dict[str, Any],
) -> Path:
    """Export ``obs -> normalizer -> actor.deterministic`` to ``path`` with ``metadata``.

    Args:
        actor: Trained actor with ``.deterministic``; not modified.
        obs_norm: Its observation normalizer; statistics are frozen into the graph.
        path: Output ``.onnx`` file; its folder is created.
        metadata: Document from :func:`make_metadata`; ``"exporter"`` is added.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        ValueError: if ``metadata['obs_dim']`` differs from the normalizer's size.
        onnx.checker.ValidationError: if the exported model is invalid.
    """
    path = Path(path)
    obs_dim = int(metadata["obs_dim"])
    if tuple(obs_norm.mean.shape) != (obs_dim,):
        raise ValueError(
            f"normalizer shape {tuple(obs_norm.mean.shape)} differs from obs_dim {obs_dim}"
        )
    module = ExportedPolicy(actor, obs_norm).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp_dir:
        raw = Path(tmp_dir) / "graph.onnx"
        exporter = _export_graph(module, obs_dim, raw)
        model = onnx.load(str(raw), load_external_data=True)
        del model.metadata_props[:]  # drop the exporter's per-node bookkeeping keys
        meta = dict(metadata, exporter=exporter)
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)
        model.producer_name = "robotac"
        model.doc_string = (
            f"robotac policy for {meta.get('env_id')} ({meta.get('algo')}): raw obs "
            "(batch, obs_dim) float32 -> frozen normalizer -> deterministic action (batch, "
            "action_dim) float32 in robot units."
        )
        onnx.checker.check_model(model, full_check=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            onnx.save_model(model, tmp)
            os.chmod(tmp, default_file_mode())  # the usual 0644, not mkstemp's 0600
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def default_file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` gives a new file (0644 by default).

    Atomic writes go through ``tempfile.mkstemp``, whose files are 0600; the exported policy and
    the checkpoints get this mode instead, so another user or a deploy service can read them.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata document of an exported file.

    Raises:
        KeyError: if the file has no :data:`METADATA_KEY` entry (not written by robotac).
    """
    model = onnx.load(str(path), load_external_data=False)
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    raise KeyError(f"{path} has no {METADATA_KEY!r} metadata; was it written by robotac export?")


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime ``InferenceSession`` of an exported file (CPU), built once and reused.

    Sessions are cached by resolved path, file size and modification time and ``threads``, so a
    file rewritten in place (a new export) gets a new session; the 8 most recent are kept.

    Args:
        path: Exported ``.onnx`` file.
        threads: onnxruntime intra-op threads (inter-op: 1).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    p = Path(path).resolve()
    st = p.stat()
    return _cached_session(str(p), st.st_size, st.st_mtime_ns, int(threads))


@functools.lru_cache(maxsize=8)
def _cached_session(path: str, size: int, mtime_ns: int, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_actions(policy, obs: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run an exported policy with onnxruntime: ``(batch, obs_dim) -> (batch, act_dim)`` float32.

    Args:
        policy: An ``onnxruntime.InferenceSession``, or the path of an exported file (its
            session comes from :func:`onnx_session`, built once per file).
        obs: ``(batch, obs_dim)`` raw observations (cast to float32).
        threads: Intra-op threads of a session built here.
    """
    sess = policy if hasattr(policy, "run") else onnx_session(policy, threads)
    return sess.run(None, {"obs": np.ascontiguousarray(obs, dtype=np.float32)})[0]


def onnx_parity(
    path: str | Path, actor: nn.Module, obs_norm: RunningNorm, obs: np.ndarray,
    batch: int = 1000,
) -> float:
    """Max absolute difference between onnxruntime and the torch actor over ``obs``.

    Args:
        path: Exported file.
        actor, obs_norm: The torch actor and its normalizer.
        obs: ``(n, obs_dim)`` raw observations.
        batch: Evaluation batch size.

    Returns:
        ``max |a_onnx - a_torch|`` in action units (rad for servo targets).
    """
    obs = np.asarray(obs, dtype=np.float32)
    sess = onnx_session(path)
    worst = 0.0
    for i in range(0, len(obs), batch):
        chunk = obs[i : i + batch]
        diff = np.abs(onnx_actions(sess, chunk) - deterministic_action(actor, obs_norm, chunk))
        worst = max(worst, float(diff.max()))
    return worst


def random_observations(
    n: int, obs_norm: RunningNorm, rng: np.random.Generator, spread: float = 3.0
) -> np.ndarray:
    """Random raw observations ``mean + spread * std * N(0, 1)`` per entry.

    With the default ``spread = 3`` the set is three times wider than the training data and, over
    10,000 x obs_dim entries, reaches beyond the normalizer's clip (|z| > 10) too.

    Note:
        Observations far outside the training data in *every* entry at once (e.g. uniform in
        ``mean +- 12 std``) drive the hidden units to large values, and the float32 rounding of
        the two GEMM implementations (onnxruntime's MLAS, torch's) then differs by up to about
        2e-5 rad on a trained actor; inside this set it stays below 1e-5.

    Returns:
        ``(n, obs_dim)`` float32.
    """
    mean = obs_norm.mean.double().numpy()
    std = np.sqrt(obs_norm.var.double().numpy() + obs_norm.eps)
    return (mean + spread * std * rng.standard_normal((n, mean.size))).astype(np.float32)
