"""The training progress bar: tqdm in a terminal, a plain line every few seconds elsewhere.

In a terminal tqdm redraws one line with carriage returns. Sent to a file, a pipe or CI's log,
those redraws become thousands of ``\\r``-joined updates on one unreadable line. Outside a
terminal the same tqdm meter is therefore written as whole lines, at most one every
:data:`LOG_INTERVAL_S` seconds (``make demo > demo.log`` stays readable).
"""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm import tqdm

__all__ = ["LOG_INTERVAL_S", "progress_bar"]

#: Seconds between two progress lines when the output is not a terminal.
LOG_INTERVAL_S = 10.0


class _LineWriter:
    """File-like wrapper that turns tqdm's ``\\r`` redraws into one line each."""

    def __init__(self, file: IO[str]):
        self._file = file

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self._file.write(line + "\n")

    def flush(self) -> None:
        self._file.flush()


def progress_bar(
    total: int,
    initial: int = 0,
    desc: str = "",
    file: IO[str] | None = None,
    interval_s: float = LOG_INTERVAL_S,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar counting env steps, readable in a terminal and in a log file alike.

    Args:
        total: Steps at 100 %.
        initial: Steps already done (resume).
        desc: Label before the meter.
        file: Where to write (default ``sys.stderr``).
        interval_s: Outside a terminal, the least time between two lines [s].
        **kwargs: Passed to ``tqdm``.

    Returns:
        The ``tqdm`` bar: in a terminal a redrawn bar; otherwise one that prints a whole line
        (the same meter: steps, %, rate, ETA and postfix) at most every ``interval_s``.
    """
    file = sys.stderr if file is None else file
    isatty = getattr(file, "isatty", None)
    if isatty is not None and isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit="step", file=file,
                    dynamic_ncols=True, **kwargs)
    return tqdm(total=total, initial=initial, desc=desc, unit="step", file=_LineWriter(file),
                ncols=100, mininterval=interval_s, maxinterval=interval_s, ascii=True, **kwargs)
