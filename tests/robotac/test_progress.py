"""The progress bar writes whole lines, not carriage-return redraws, outside a terminal."""

from __future__ import annotations

import io
import time

from robotac.progress import progress_bar


def test_progress_outside_a_terminal_is_a_few_whole_lines() -> None:
    out = io.StringIO()  # not a TTY, like a pipe, a file or CI's log
    t_start = time.perf_counter()
    bar = progress_bar(total=3000, desc="sac robotac/Quadruped-v0", file=out, interval_s=0.05)
    t_end = time.perf_counter() + 0.5
    steps = 0
    while steps < 3000:
        bar.update(1)
        steps += 1
        if steps % 100 == 0:
            bar.set_postfix(SPS="123", refresh=False)
            time.sleep(max(0.0, (t_end - time.perf_counter()) / (30 - steps // 100 + 1)))
    bar.close()
    elapsed_s = time.perf_counter() - t_start
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    # At most one line per 0.05 s of the time the loop really took (about 0.5 s: some 10 lines;
    # longer on a busy machine), the first and the final one besides: not 3000 updates.
    assert 2 <= len(lines) <= 3 + elapsed_s / 0.05, (elapsed_s, lines)
    assert all("sac robotac/Quadruped-v0" in line for line in lines)
    assert "3000/3000" in lines[-1] and "100%" in lines[-1]


def test_progress_in_a_terminal_redraws_one_line() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    bar = progress_bar(total=10, file=out, mininterval=0)
    for _ in range(10):
        bar.update(1)
    bar.close()
    assert out.getvalue().count("\r") >= 10  # redrawn in place
