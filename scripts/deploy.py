#!/usr/bin/env python
"""Thin wrapper: ``python scripts/deploy.py ARGS`` == ``python -m deploy ARGS`` (see deploy/cli.py).

    python scripts/deploy.py --virtual --duration-s 20 --command 0.5,0,0 --log runs/deploy.npz
    python scripts/deploy.py --policy policy.onnx --port /dev/ttyACM0 --baud 1000000
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
