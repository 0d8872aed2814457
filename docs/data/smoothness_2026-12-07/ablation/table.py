"""Print the issue-26 ablation table from the eval_gait.py JSON files in this folder.

Usage: python docs/data/smoothness_2026-12-07/ablation/table.py
(each arm's ``<arm>_zero.json`` and ``<arm>_fwd03.json``, written by
``scripts/eval_gait.py --run runs/abl_<arm> --which latest --episodes 4 --command 0,0,0`` and
``--command 0.3,0,0``).
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
ARMS = {"a50": "(a) steer settings", "b": "(b) + reward terms", "c": "(c) + CAPS",
        "d": "(d) + clock stands", "e": "(e) (a) + CAPS alone",
        "f01": "(f) (d) + action_rate_limit -0.1", "f003": "(f') (d) + action_rate_limit -0.03"}

print("| arm | command | vx [m/s] | falls | all feet down | mean \\|q dot\\| [rad/s] | "
      "mean \\|d target\\| [rad] | reversals | filter binds | > 8 Hz | power [W] | "
      "raw too fast |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for arm, name in ARMS.items():
    for cmd in ("zero", "fwd03"):
        f = HERE / f"{arm}_{cmd}.json"
        if not f.exists():
            continue
        r = json.loads(f.read_text())
        s = r["smoothness"]
        print(f"| {name} | {tuple(r['command'])} | {r['mean_vx_body_m_s']:+.3f} | "
              f"{r['falls']}/{r['episodes']} | {100 * s['feet_down_share']:.1f} % | "
              f"{s['mean_abs_dq_rad_s']:.3f} | {s['mean_abs_dtarget_rad']:.4f} | "
              f"{100 * s['reversal_share']:.1f} % | {100 * s['filter_bind_share']:.1f} % | "
              f"{100 * s['hf_power_share']:.1f} % | {s['mech_power_w']:.2f} | "
              f"{100 * r['too_fast_share_raw']:.1f} % |")
