"""Time TD3's update on one CPU thread: ms per actor step and ms per update.

The networks have the default sizes (256x256, batch 256) at the quadruped's dimensions (obs 45,
act 12) unless told otherwise. Two figures, each the median over ``--reps`` timed repetitions
after a warm-up:

* actor step: ``actor_loss`` forward, backward and the actor's Adam step, critics frozen (what
  TD3 runs every ``policy_delay`` updates);
* update: ``TD3.update`` averaged over one ``policy_delay`` cycle (critic step every update,
  actor step and target updates every second one).

With ``--ab`` the actor step and the update are also timed with the actor loss written as
before issue 12 (both critics evaluated, Q1 kept), interleaved with the current one so both see
the same machine load.

    python scripts/bench_td3_update.py                 # quadruped sizes
    python scripts/bench_td3_update.py --ab --reps 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from robotac.algos import TD3, _step  # noqa: E402
from robotac.buffer import Batch  # noqa: E402
from robotac.config import TrainConfig  # noqa: E402


def _batch(obs_dim: int, low: torch.Tensor, high: torch.Tensor, n: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    action = low + torch.rand(n, low.numel(), generator=g) * (high - low)
    return Batch(torch.randn(n, obs_dim, generator=g), action, torch.randn(n, generator=g),
                 torch.randn(n, obs_dim, generator=g), torch.zeros(n))


def _both_critics_loss(algo: TD3, batch: Batch) -> torch.Tensor:
    """The actor loss before issue 12: both critics run, only Q1 is used."""
    return -algo.critic(batch.obs, algo.actor.to_unit(algo.actor(batch.obs)))[0].mean()


def _actor_step(algo: TD3, batch: Batch, loss_fn) -> float:
    t = time.perf_counter()
    algo._set_critic_grad(False)
    _step(algo.actor_opt, loss_fn(batch))
    algo._set_critic_grad(True)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--obs-dim", type=int, default=45)
    p.add_argument("--act-dim", type=int, default=12)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--ab", action="store_true", help="also time the both-critics actor loss")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    low, high = -torch.ones(args.act_dim), torch.ones(args.act_dim)
    cfg = TrainConfig(env_id="bench", algo="td3", policy_delay=2)
    algo = TD3(args.obs_dim, low.numpy(), high.numpy(), cfg)
    batch = _batch(args.obs_dim, low, high, args.batch)
    for _ in range(20):
        algo.update(batch)

    current_loss = algo.actor_loss
    old_loss = lambda b: _both_critics_loss(algo, b)  # noqa: E731

    def update_ms(loss_fn) -> float:
        algo.actor_loss = loss_fn
        t = time.perf_counter()
        algo.update(batch)
        algo.update(batch)
        algo.actor_loss = current_loss
        return (time.perf_counter() - t) / 2

    new, old, upd, upd_old = [], [], [], []
    for _ in range(args.reps):
        new.append(_actor_step(algo, batch, current_loss))
        upd.append(update_ms(current_loss))
        if args.ab:
            old.append(_actor_step(algo, batch, old_loss))
            upd_old.append(update_ms(old_loss))

    def ms(xs: list[float]) -> str:
        return f"{1e3 * statistics.median(xs):.2f} ms"

    print(f"TD3 obs {args.obs_dim}, act {args.act_dim}, batch {args.batch}, 256x256, 1 thread, "
          f"torch {torch.__version__}, median of {args.reps}")
    print(f"  actor step (current actor_loss): {ms(new)}")
    if args.ab:
        print(f"  actor step (both critics, Q1 used): {ms(old)}")
    print(f"  update (mean over the policy_delay=2 cycle): {ms(upd)}")
    if args.ab:
        print(f"  update with the both-critics actor loss: {ms(upd_old)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
