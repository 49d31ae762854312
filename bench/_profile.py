"""Where a worker's time goes: py-spy's raw samples reduced to a top-N by self time.

The worker runs under ``py-spy record --format raw --subprocesses --nonblocking`` (py-spy
starts it, so start-up is sampled as it is timed in the drain, and prefork children are
followed). py-spy leaves idle threads out by default, so a sample is time spent running Python
or native code, not waiting on a socket. Rules of the reduction:

* self time = samples whose innermost frame is the function, over all samples of the run;
* a function is its name and file (line numbers dropped), so one function's lines add up;
  the import system's own frames (``<frozen importlib...>``: finding, reading, unmarshalling
  and executing extension modules) add up as one line, the start-up cost of importing;
* samples of the process py-spy started are tagged ``parent``, of any process it forked
  ``child`` (py-spy writes a child's stack under its chain of processes, the sampled one
  last): a prefork worker shows where each side spends its time.
"""

from __future__ import annotations

import collections
import re
import shutil
from pathlib import Path

IMPORTING = "importing modules (importlib's own frames)"
_PROCESS = re.compile(r'^process (\d+):')
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy executable, or None when it is not installed."""
    return shutil.which("py-spy")


def record_command(out_path: Path, command: list[str], rate_hz: int = 200) -> list[str]:
    """``command`` run under py-spy, raw samples written to ``out_path`` when it exits."""
    return [
        py_spy() or "py-spy", "record", "--format", "raw", "--subprocesses", "--nonblocking",
        "-r", str(rate_hz), "-o", str(out_path), "--", *command,
    ]


def _short(path: str) -> str:
    """The last two parts of a file path (``worker/executor.py``), enough to tell modules
    apart without the site-packages prefix."""
    return "/".join(path.split("/")[-2:])


def top_self(raw: str, parent_pid: int, limit: int = 10) -> list[tuple[float, str]]:
    """The ``limit`` functions with the most self time in py-spy's raw output ``raw``, as
    ``(percent of all samples, "role function (file)")``, most first; ``parent_pid`` is the
    process py-spy started."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        role = ""
        # with --subprocesses a stack starts with the chain of processes down to the one
        # sampled: "process <parent>:...;process <child>:...;frames"
        while frames and (match := _PROCESS.match(frames[0])):
            role = "parent " if int(match.group(1)) == parent_pid else "child "
            frames = frames[1:]
        if not frames:
            continue
        frame = _FRAME.match(frames[-1])
        if frame and frame["file"].startswith("<frozen importlib"):
            name = IMPORTING
        else:
            name = f"{frame['func']} ({_short(frame['file'])})" if frame else frames[-1]
        counts[role + name] += int(count_text)
        total += int(count_text)
    return [(100.0 * c / total, name) for name, c in counts.most_common(limit)] if total else []
