"""``python -m deploy ...``: the deploy CLI (see :mod:`deploy.cli`)."""

from deploy.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
