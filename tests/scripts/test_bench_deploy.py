"""scripts/bench_deploy.py: the per-segment sim-to-sim judgement along a command schedule."""

from __future__ import annotations

import numpy as np

from scripts.bench_deploy import compare_segments
from scripts.eval_gait import segment_means

#: forward, stand, turn left, backward, sideways, forward + turn
COMMANDS = np.array([[0.4, 0, 0], [0, 0, 0], [0, 0, 0.8], [-0.2, 0, 0], [0, 0.15, 0],
                     [0.4, 0, 0.5]])
ENV = np.array([[0.38, 0.01, -0.02], [0.0, 0.0, 0.0], [0.02, 0.0, 0.75], [-0.19, 0.0, 0.01],
                [0.01, 0.14, 0.0], [0.36, 0.02, 0.45]])


def test_within_ten_percent_passes_and_zero_components_are_not_judged() -> None:
    deploy = ENV * 1.08  # 8 % off everywhere
    deploy[:, 1] += 0.3 * (COMMANDS[:, 1] == 0)  # zero vy commands: far off, not judged
    rows, ok = compare_segments(COMMANDS, ENV, deploy)
    assert ok
    assert [r["ok"] for r in rows] == [True, None, True, True, True, True]  # standing: not judged
    assert rows[0]["judged"] == [True, False, False]
    np.testing.assert_allclose(rows[0]["rel_diff"][0], 0.08, atol=1e-12)
    assert rows[0]["rel_diff"][1] > 1.0  # reported all the same


def test_a_component_off_by_more_than_ten_percent_fails() -> None:
    deploy = ENV.copy()
    deploy[2, 2] = 0.75 * 0.88  # the turn: 12 % slower
    rows, ok = compare_segments(COMMANDS, ENV, deploy)
    assert not ok
    assert rows[2]["ok"] is False and abs(rows[2]["rel_diff"][2] - 0.12) < 1e-9
    assert all(r["ok"] in (True, None) for i, r in enumerate(rows) if i != 2)
    # The combined segment fails on either component.
    deploy = ENV.copy()
    deploy[5, 0] = 0.30
    assert compare_segments(COMMANDS, ENV, deploy)[0][5]["ok"] is False


def test_floor_and_a_run_that_ended_early() -> None:
    env = np.array([[0.01, 0.0, 0.0]])  # the env barely moves on a commanded vx
    rows, ok = compare_segments([[0.3, 0, 0]], env, [[0.014, 0.0, 0.0]])
    assert ok and abs(rows[0]["rel_diff"][0] - 0.08) < 1e-9  # 0.004 / 0.05, not / 0.01
    assert not compare_segments([[0.3, 0, 0]], env, [[0.016, 0.0, 0.0]])[1]  # 12 %
    # A deploy run that fell before a segment (NaN) fails it; so does a NaN env.
    rows, ok = compare_segments(COMMANDS, ENV, np.where(np.arange(6)[:, None] >= 4, np.nan, ENV))
    assert not ok and rows[4]["ok"] is False and rows[3]["ok"] is True
    assert not compare_segments([[0.3, 0, 0]], [[np.nan, 0, 0]], [[0.3, 0, 0]])[1]


def test_segment_means_leave_out_the_transition_and_then_judge() -> None:
    """Synthetic runs: a 1 s transient at each change is left out; a slower segment fails."""
    dt, starts, end = 0.02, np.array([0.0, 4.0, 8.0]), 12.0
    cmds = np.array([[0.4, 0, 0], [0, 0, 0], [0, 0, 0.8]])
    t = np.arange(0, end, dt)
    seg = np.searchsorted(starts, t, side="right") - 1
    rng = np.random.default_rng(0)
    env = cmds[seg] * 0.9 + rng.normal(0, 0.01, (len(t), 3))
    since = t - starts[seg]
    deploy = env.copy()
    deploy[since < 0.8] = 5.0  # a wild transient, inside the 1 s left out
    deploy += rng.normal(0, 0.01, deploy.shape)
    e = segment_means(t, env, starts, end, skip_s=1.0)
    d = segment_means(t + 0.003, deploy, starts, end, skip_s=1.0)  # a loop's jittery clock
    np.testing.assert_allclose(e[0], [0.36, 0, 0], atol=0.01)
    assert compare_segments(cmds, e, d)[1]
    assert not compare_segments(cmds, e, segment_means(t, deploy, starts, end, skip_s=0.0))[1]
    d[2, 2] *= 0.85
    assert not compare_segments(cmds, e, d)[1]
    # A run that ended at 6 s leaves the last segment empty: NaN.
    cut = t < 6.0
    assert np.isnan(segment_means(t[cut], env[cut], starts, end)[2]).all()


def test_policy_phase_records_align_from_the_ramps_first_command() -> None:
    """The robot records one row per command from the ramp's first: the loop's logged steps,
    then the stop's lowering. The policy phase's rows are the logged run steps, not the last
    ones (which were the lowering: every sim-to-sim window was shifted by it)."""
    from scripts.bench_deploy import policy_phase_records

    phase = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])  # ramp, hold, run
    vx = list(range(9)) + [90, 91, 92]  # three lowering commands after the run
    rec = {"vx_body_m_s": vx, "yaw_rate_body_rad_s": [-x for x in vx]}
    got = policy_phase_records(rec, phase, ("vx_body_m_s", "yaw_rate_body_rad_s"))
    np.testing.assert_array_equal(got, [[5, -5], [6, -6], [7, -7], [8, -8]])
    # A robot that recorded fewer commands than the loop logged (lost ones): cut at the end.
    short = policy_phase_records({"vx_body_m_s": vx[:7]}, phase)
    np.testing.assert_array_equal(short[:, 0], [5, 6])
