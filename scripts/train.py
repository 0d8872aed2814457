"""Train SAC, TD3 or DDPG: ``python scripts/train.py --env Pendulum-v1 --algo sac ...``.

The same as ``robotac train ...`` (see ``robotac train --help``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robotac.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
