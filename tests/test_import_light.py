"""``import celeriac``, creating an app and defining tasks load no optional dependency and
touch nothing: no broker connection, no file created."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import celeriac

FORBIDDEN = [
    "redis",
    "amqp",
    "sqlalchemy",
    "psycopg",
    "psycopg2",
    "django",
    "starlette",
    "uvicorn",
    "msgpack",
    "yaml",
    "kombu",
    "celery",
]

SCRIPT = """
import json, sys
import celeriac
from celeriac import Celery, shared_task

app = Celery("x")

@app.task
def add(x, y):
    return x + y

@app.task(bind=True, max_retries=5)
def bound(self, x):
    return x

@shared_task
def shared(x):
    return x

forbidden = json.loads(sys.argv[1])
loaded = sorted(
    name for name in sys.modules if name.split(".")[0] in forbidden
)
print(json.dumps({"loaded": loaded, "tasks": sorted(app._tasks.keys())}))
"""


def _run(tmp_path: Path, script: str) -> dict[str, list[str]]:
    package_root = Path(celeriac.__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(package_root), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.pop("CELERY_CONFIG_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, json.dumps(FORBIDDEN)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_import_app_and_tasks_load_no_optional_dependency(tmp_path: Path) -> None:
    result = _run(tmp_path, SCRIPT)
    assert result["loaded"] == []
    # The script really defined the tasks (so the check ran after decoration).
    assert {"x.add", "x.bound", "x.shared"} <= set(result["tasks"])


def test_import_app_and_tasks_create_no_file(tmp_path: Path) -> None:
    _run(tmp_path, SCRIPT)
    assert sorted(os.listdir(tmp_path)) == []


def test_forbidden_check_detects_a_loaded_module(tmp_path: Path) -> None:
    # The same check, with a forbidden module imported on purpose, must report it.
    result = _run(tmp_path, "import kombu.utils.json\n" + SCRIPT)
    assert "kombu" in result["loaded"]


def test_the_cli_loads_no_web_client_stack(tmp_path: Path) -> None:
    """The worker command line (``celeriac.cli.main``) does not load urllib's HTTP client,
    which brings ssl, http and email (~6.5 MB of RSS in every worker on a broker that needs
    none of them); only the demo's dashboard and Django steps do, when they run."""
    script = (
        "import json, sys\nimport celeriac.cli.main\n"
        "print(json.dumps({'loaded': sorted(m for m in ('urllib.request', 'http.client', 'ssl')"
        " if m in sys.modules), 'tasks': []}))\n"
    )
    assert _run(tmp_path, script)["loaded"] == []
