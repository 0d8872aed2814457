"""envs.interface: projected gravity (single-reading fast path and batches) and the obs builder."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.interface import QUADRUPED_INTERFACE, projected_gravity, quadruped_obs

quats = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 0.1
)


@settings(max_examples=200, deadline=None)
@given(quats)
def test_single_reading_equals_batch(q: list[float]) -> None:
    single = projected_gravity(np.array(q))
    batch = projected_gravity(np.array([q, q]))
    np.testing.assert_allclose(single, batch[0], atol=1e-12)
    assert abs(np.linalg.norm(single) - 1.0) < 1e-9


def test_known_orientations() -> None:
    np.testing.assert_allclose(projected_gravity(np.array([1.0, 0, 0, 0])), [0, 0, -1])
    h = np.sqrt(0.5)
    # Rolled +90 deg about x (left side up): gravity points along the body's -y.
    np.testing.assert_allclose(projected_gravity(np.array([h, h, 0, 0])), [0, -1, 0], atol=1e-12)
    # Pitched +90 deg about y (nose down): gravity points along the body's +x.
    np.testing.assert_allclose(projected_gravity(np.array([h, 0, h, 0])), [1, 0, 0], atol=1e-12)


def test_obs_at_default_pose_is_gravity_and_command_only() -> None:
    d = np.asarray(QUADRUPED_INTERFACE.default_pose_rad)
    obs = quadruped_obs(np.array([1.0, 0, 0, 0]), np.zeros(3), d, np.zeros(12), d, [0.5, 0, 0])
    want = np.zeros(45, np.float32)
    want[2] = -1.0
    want[42] = 0.5
    np.testing.assert_array_equal(obs, want)


def test_action_filter_is_identity_by_default_and_reads_the_env_kwargs() -> None:
    from envs.interface import ActionFilter

    prev, a = np.zeros(12), np.linspace(-1.0, 1.0, 12)
    ident = ActionFilter.from_env_kwargs({"fixed_command": [0.5, 0, 0]})
    assert ident.is_identity
    np.testing.assert_array_equal(ident.apply(a, prev, 0.02), a)
    f = ActionFilter.from_env_kwargs({"action_filter_alpha": 0.5, "action_max_rate_rad_s": 5.0})
    assert f == ActionFilter(0.5, 5.0) and f.to_dict() == {"alpha": 0.5, "max_rate_rad_s": 5.0}
    out = f.apply(a, prev, 0.02)
    # 0.5 * a, then limited to 5 rad/s * 0.02 s = 0.1 rad per step.
    np.testing.assert_allclose(out, np.clip(0.5 * a, -0.1, 0.1))
    assert np.all(np.abs(np.diff(np.stack([prev, out]), axis=0)) <= 0.1 + 1e-12)
