"""examples/django_demo, the tutorial's project, in both settings styles: Django's test client
against the site, a real worker and a real beat (subprocesses) on the embedded SQLite broker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from celeriac import Celery
from tests.django.test_fixup import DEMO, demo_env, migrate, start, stop, wait_for

HERE = Path(__file__).resolve().parent

STYLES = ["celery_demo.settings", "celery_demo.settings_old"]


@pytest.mark.slow
@pytest.mark.parametrize("settings", STYLES)
def test_tutorial_site_worker_and_beat(tmp_path: Path, settings: str) -> None:
    env = demo_env(tmp_path, settings)
    env["PYTHONPATH"] = os.pathsep.join([str(DEMO), env["PYTHONPATH"]])
    migrate(env)
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    worker = start(
        ["celeriac", "-A", "celery_demo", "worker", "-l", "info", "--pool", "threads", "-c", "4"],
        env, worker_log,
    )
    beat = None
    client_app = Celery(
        "client", broker=env["CELERY_DEMO_BROKER_URL"], set_as_current=False
    )
    try:
        wait_for(worker_log, "ready.", worker)
        beat = start(
            ["celeriac", "-A", "celery_demo", "beat", "-l", "info",
             "-s", str(tmp_path / "celerybeat-schedule")],
            env, beat_log,
        )
        sent_at = time.monotonic()
        retried = client_app.send_task("celery_app.tasks.retry_div", (1, 0))
        grouped = client_app.send_task("celery_app.tasks.first_group", (5,))
        hooked = client_app.send_task("celery_app.tasks.hook_add", (1, 1))

        run = subprocess.run(
            [sys.executable, str(HERE / "demo_client.py")], cwd=DEMO, env=env,
            capture_output=True, text=True, timeout=100,
        )
        assert run.returncode == 0, run.stderr
        site = json.loads(run.stdout)
        assert site["timezone"] == "Asia/Shanghai"
        assert site["beat_schedule"] == ["add-every-10-seconds", "mul-on-monday-evening"]
        assert site["broker_url"] == env["CELERY_DEMO_BROKER_URL"]
        assert site["missing_id"] == 400
        assert site["index"] == {"status": "SUCCESS", "result": 42}
        assert site["primitive"] == {
            "group": [0, 2, 4, 6, 8],
            "chain": 16,
            "chord": 20,
            "map": [3, 7],
            "starmap": [3, 7],
            "chunks": [[0, 2], [4, 6], [8, 10], [12, 14], [16, 18]],
        }
        assert grouped.get(timeout=30) == [0, 2, 4, 6, 8]
        assert hooked.get(timeout=30) == 2
        # the beat entry 'schedule': 10 -> add(16, 16) run by the worker within ~10 s
        wait_for(worker_log, ": 32", worker, timeout=40)
        log = worker_log.read_text()
        assert re.search(r"celery_app\.tasks\.add\[[^\]]+\] succeeded in [0-9.]+s: 32", log)
        assert "returned with status SUCCESS" in log  # the hook base task's after_return
        # retried 4 times, 4 s apart, then failed with the division error
        with pytest.raises(ZeroDivisionError):
            retried.get(timeout=60)
        assert time.monotonic() - sent_at >= 4 * 4 - 1  # countdown=4, max_retries=4
        assert "Sending due task add-every-10-seconds" in beat_log.read_text()
    finally:
        if beat is not None:
            stop(beat)
        stop(worker)
        client_app.close()
