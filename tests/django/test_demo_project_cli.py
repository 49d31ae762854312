"""``celeriac demo`` starts the tutorial's Django site too, prints its URLs, and with
``--serve`` keeps it up until Ctrl-C, then stops everything cleanly."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.django.conftest import subprocess_env


def test_demo_serves_the_django_site_until_ctrl_c(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "demo", "--quick", "--serve"],
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        output = "".join(lines)
        assert "Ctrl-C stops" in output, output
        assert '-> {"status": "SUCCESS", "result": 5}' in output
        site = re.search(r"site:\s+(http://127\.0\.0\.1:\d+)/celery_app/", output)
        assert site is not None, output
        # still serving: a browser's request starts a task and gets its id
        with urllib.request.urlopen(f"{site.group(1)}/celery_app/?x=1&y=1", timeout=10) as resp:
            assert json.loads(resp.read())["task_id"]
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, output + rest
    assert "stopping the site and its worker" in rest
    assert "worker exited with status 0" in rest
    assert "Demo finished: all steps behaved as expected." in rest
    try:
        urllib.request.urlopen(f"{site.group(1)}/celery_app/", timeout=2)
    except OSError:
        pass
    else:
        raise AssertionError("the site still answers after Ctrl-C")
