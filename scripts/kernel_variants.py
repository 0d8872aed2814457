"""Say whether this process's CPU kernels differ from the defaults (for `make test-kernels`).

Computes a fixed float32 matmul (a batch and one row, as an actor does) and an elementwise
``tanh`` here and in a child process with the kernel-selecting variables (``MKL_*``,
``ATEN_CPU_CAPABILITY``, ``LD_PRELOAD``) removed, and prints one line: which results differ,
and the CPU capability torch reports. A kernel pass whose setting changes nothing on this host
tests nothing new; the line says so, so a green pass is not mistaken for coverage.

Usage: ``MKL_CBWR=COMPATIBLE python scripts/kernel_variants.py``. Exit status 0 always (the
numeric tests are the check; this only says what they ran on).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

KERNEL_VARS = ("MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "ATEN_CPU_CAPABILITY", "MKL_DEBUG_CPU_TYPE",
               "LD_PRELOAD")


def fingerprints() -> dict[str, str]:
    """Hashes of float32 results whose kernels the variables select."""
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 300, generator=g)
    b = torch.randn(300, 200, generator=g)

    def h(t: torch.Tensor) -> str:
        return hashlib.sha1(t.contiguous().numpy().tobytes()).hexdigest()[:10]

    return {"matmul (64 x 300) @ (300 x 200)": h(a @ b), "one row @ (300 x 200)": h(a[:1] @ b),
            "tanh": h(torch.tanh(a))}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        for name, value in fingerprints().items():
            print(f"{name}\t{value}")
        return 0
    import torch

    setting = " ".join(f"{k}={os.environ[k]}" for k in KERNEL_VARS if k in os.environ)
    default_env = {k: v for k, v in os.environ.items() if k not in KERNEL_VARS}
    out = subprocess.run([sys.executable, __file__, "--child"], env=default_env,
                         capture_output=True, text=True, check=True).stdout
    default = dict(line.split("\t") for line in out.splitlines())
    here = fingerprints()
    changed = [k for k, v in here.items() if default.get(k) != v]
    capability = torch.backends.cpu.get_cpu_capability()
    if changed:
        print(f"kernels under {setting or 'the defaults'} (ATen {capability}): results differ "
              f"from the defaults in {', '.join(changed)}")
    else:
        print(f"kernels under {setting or 'the defaults'} (ATen {capability}): NO result differs "
              "from the defaults on this host; this pass repeats the default kernels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
