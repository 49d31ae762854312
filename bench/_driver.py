"""Run one benchmark driver script in a fresh directory beside its app module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def run_driver(
    label: str,
    app_source: str,
    driver_source: str,
    args: list[str],
    timeout_s: float,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Write ``benchapp.py`` and ``driver.py``, run the driver with ``args`` and return the JSON
    object it prints last."""
    with tempfile.TemporaryDirectory() as tmp:
        work = workdir or Path(tmp)
        (work / "benchapp.py").write_text(app_source)
        (work / "driver.py").write_text(driver_source)
        proc = subprocess.run(
            [sys.executable, "driver.py", *args],
            cwd=work,
            env=dict(os.environ, PYTHONPATH=str(work)),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
