"""Issue 14 item 2: each user mistake ends in ONE line naming what the user wrote and the fix,
exit status 2, and no traceback unless ``--debug`` or ``-l debug`` asks for it.

Every command runs as a real subprocess (``python -m celeriac``) in a fresh directory."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest

from celeriac.cli.mistakes import explain
from celeriac.exceptions import ImproperlyConfigured
from tests.cli.workers import WorkerProcess, run_cli
from tests.redis.support import REDIS_BROKER_DB, drop_keys, redis_url


def write(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


def one_error_line(stderr: str) -> str:
    """The single line on stderr, which must be an ``Error:`` line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    """A package whose app includes a task module; the name is unique per test."""
    name = f"mk_{uuid.uuid4().hex[:8]}"
    write(tmp_path, f"{name}/__init__.py", "")
    write(tmp_path, f"{name}/celery.py", f"""
        from celeriac import Celery
        app = Celery({name!r}, broker="memory://mistakes", include=[{name + '.tasks'!r}])
    """)
    return tmp_path, name


# -- import errors in the user's modules ----------------------------------------------------------


def test_import_error_in_a_task_module_is_one_line(project: tuple[Path, str]) -> None:
    root, name = project
    write(root, f"{name}/tasks.py", f"""
        from {name}.celery import app
        import a_package_nobody_installed_{name}

        @app.task
        def add(x, y):
            return x + y
    """)
    done = run_cli(["-A", name, "worker", "-P", "solo"], root)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line == (
        f"Error: {name}/tasks.py:3: ModuleNotFoundError: "
        f"No module named 'a_package_nobody_installed_{name}'"
    )


def test_error_raised_in_a_module_the_app_imports_names_that_module(
    project: tuple[Path, str],
) -> None:
    root, name = project
    write(root, f"{name}/helpers.py", "\n\nLIMIT = int('ten')\n")
    write(root, f"{name}/tasks.py", f"from {name} import helpers\n")
    done = run_cli(["-A", name, "worker", "-P", "solo"], root)
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        f"Error: {name}/helpers.py:3: ValueError: invalid literal for int() with base 10: 'ten'"
    )


def test_syntax_error_in_a_task_module_names_file_and_line(project: tuple[Path, str]) -> None:
    root, name = project
    write(root, f"{name}/tasks.py", "x = 1\ndef broken(:\n    pass\n")
    done = run_cli(["-A", name, "worker", "-P", "solo"], root)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith(f"Error: {name}/tasks.py:2: SyntaxError: "), line


def test_import_error_in_the_app_module_itself(tmp_path: Path) -> None:
    name = f"mk_{uuid.uuid4().hex[:8]}"
    write(tmp_path, f"{name}.py", "from celeriac import Celery\nimport nowhere_to_be_found\n")
    done = run_cli(["-A", name, "inspect", "ping"], tmp_path)
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        f"Error: Invalid value for '-A' / '--app': Unable to load celeriac application. "
        f"While importing '{name}': {name}.py:2: ModuleNotFoundError: "
        "No module named 'nowhere_to_be_found'"
    )


@pytest.mark.parametrize("ask", [["--debug"], ["-l", "debug"], ["--loglevel=DEBUG"]])
def test_debug_shows_the_traceback(project: tuple[Path, str], ask: list[str]) -> None:
    root, name = project
    write(root, f"{name}/tasks.py", "import a_package_nobody_installed\n")
    done = run_cli(["-A", name, "worker", "-P", "solo", *ask], root)
    assert done.returncode != 0
    assert "Traceback (most recent call last)" in done.stderr
    assert "a_package_nobody_installed" in done.stderr


def test_debug_is_a_documented_global_option(tmp_path: Path) -> None:
    done = run_cli(["--help"], tmp_path)
    assert "--debug" in done.stdout


def test_only_the_users_mistakes_are_shortened() -> None:
    # A bug (any other exception, raised outside an import of the user's module) keeps its
    # traceback: explain() leaves it alone and the group re-raises it.
    assert explain(RuntimeError("a bug")) is None
    assert explain(KeyError("x")) is None
    mistake = explain(ImproperlyConfigured("timezone='X' is not\na known time zone"))
    assert mistake is not None
    assert (mistake.exit_code, mistake.format_message()) == (
        2, "timezone='X' is not a known time zone"
    )


# -- settings ---------------------------------------------------------------------------------


TZ_APP = """
    from celeriac import Celery
    app = Celery("tz", broker="memory://tz", timezone="Asia/Shangai")

    @app.task
    def add(x, y):
        return x + y

    app.conf.beat_schedule = {{"a": {{"task": "{name}.add", "schedule": 5.0}}}}
"""


@pytest.mark.parametrize("command", [["worker", "-P", "solo"], ["beat"]])
def test_misspelt_timezone_is_one_line_with_a_suggestion(tmp_path: Path,
                                                        command: list[str]) -> None:
    name = f"mk_{uuid.uuid4().hex[:8]}"
    write(tmp_path, f"{name}.py", TZ_APP.format(name=name))
    done = run_cli(["-A", name, *command], tmp_path)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith(
        "Error: timezone='Asia/Shangai' is not a known time zone; did you mean 'Asia/Shanghai'?"
    ), line
    # nothing connected, nothing created (beat: no schedule file either)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [f"{name}.py"]


# -- no app ---------------------------------------------------------------------------------------


def test_worker_without_an_app_says_so_and_creates_nothing(tmp_path: Path) -> None:
    done = run_cli(["worker", "-P", "solo"], tmp_path)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "no app given" in line and "-A" in line and "CELERIAC_APP" in line
    assert list(tmp_path.iterdir()) == []  # no celeriac.db in the current directory


def test_worker_without_an_app_but_with_tasks_starts(tmp_path: Path) -> None:
    # -I gives the default app a task module: that is a worker with something to run.
    name = f"mk_{uuid.uuid4().hex[:8]}"
    write(tmp_path, f"{name}.py", """
        from celeriac import shared_task

        @shared_task
        def ping():
            return "pong"
    """)
    with WorkerProcess(tmp_path, ["worker", "-P", "solo", "-I", name, "-l", "info",
                                  "-b", f"sqlite:///{tmp_path / 'b.db'}"]) as proc:
        proc.wait_for("ready.")
        assert f"{name}.ping" in proc.output()
        assert proc.stop() == 0


# -- beat and a Redis URL with options --------------------------------------------------------


def test_beat_accepts_a_redis_url_with_global_keyprefix(tmp_path: Path) -> None:
    import redis

    url = redis_url(REDIS_BROKER_DB)
    prefix = url.partition("?global_keyprefix=")[2]
    name = f"mk_{uuid.uuid4().hex[:8]}"
    write(tmp_path, f"{name}.py", f"""
        from celeriac import Celery
        app = Celery({name!r}, broker={url!r})

        @app.task
        def add(x, y):
            return x + y

        app.conf.beat_schedule = {{"every": {{"task": "{name}.add", "schedule": 1.0}}}}
    """)
    client = redis.Redis.from_url(url.partition("?")[0])
    try:
        with WorkerProcess(tmp_path, ["-A", name, "beat", "-l", "info"]) as proc:
            proc.wait_for("Sending due task every")
            # The schedule's state lives under the URL's prefix, as the worker's keys do.
            key = f"{prefix}celeriac:beat:{name}:celerybeat-schedule"
            proc.wait_for(key)
            assert proc.stop() == 0, proc.output()
        assert client.hget(key, "every") is not None
        assert "Traceback" not in proc.output()
    finally:
        client.close()
        drop_keys(url)


def test_a_library_error_points_at_the_users_line(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The error comes from deep inside the json module; the line named is the user's call.
    import importlib
    import sys

    from celeriac.cli.usercode import import_error_line

    name = f"mk_{uuid.uuid4().hex[:8]}"
    write(tmp_path, f"{name}.py", 'import json\n\nSETTINGS = json.loads("{broken")\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ValueError) as info:
            importlib.import_module(name)
    finally:
        sys.modules.pop(name, None)
    line = import_error_line(info.value)
    assert line is not None
    assert line.startswith(f"{name}.py:3: JSONDecodeError: Expecting property name"), line
    # Not raised by an import: not a mistake of this kind.
    assert import_error_line(ValueError("plain")) is None


def test_an_app_made_with_celerys_class_is_named(tmp_path: Path) -> None:
    name = f"mk_{uuid.uuid4().hex[:8]}"
    write(tmp_path, f"{name}.py", """
        from celery import Celery
        app = Celery("left", broker="memory://")
    """)
    done = run_cli(["-A", name, "worker", "-P", "solo"], tmp_path)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert f"{name}:app is an app of the celery package, not celeriac's" in line
    assert "from celeriac import Celery" in line


def test_misspelt_celery_keyword_in_the_app_module_is_one_line(tmp_path: Path) -> None:
    name = f"mk_{uuid.uuid4().hex[:8]}"
    write(tmp_path, f"{name}.py", 'from celeriac import Celery\napp = Celery("b", borker="x")\n')
    done = run_cli(["-A", name, "worker", "-P", "solo"], tmp_path)
    assert done.returncode == 2
    assert one_error_line(done.stderr).endswith(
        f"While importing '{name}': {name}.py:2: TypeError: Celery() got an unexpected keyword "
        "argument 'borker'; did you mean 'broker'?"
    )
    assert list(tmp_path.glob("*.db")) == []  # it never fell back to the SQLite default


def test_beat_with_a_scheduler_that_does_not_load_is_a_usage_error(tmp_path: Path) -> None:
    name = f"mk_{uuid.uuid4().hex[:8]}"
    write(tmp_path, f"{name}.py",
          'from celeriac import Celery\napp = Celery("s", broker="memory://s")\n')
    done = run_cli(["-A", name, "beat", "-S", "nosuch_mod_zz.Scheduler"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert one_error_line(done.stderr) == (
        "Error: Cannot load the beat scheduler 'nosuch_mod_zz.Scheduler': "
        "No module named 'nosuch_mod_zz'")


def test_beat_that_cannot_reach_its_broker_exits_69(tmp_path: Path) -> None:
    name = f"mk_{uuid.uuid4().hex[:8]}"
    write(tmp_path, f"{name}.py", 'from celeriac import Celery\napp = Celery("s")\n')
    done = run_cli(["-A", name, "-b", "redis://127.0.0.1:1/0", "beat"], tmp_path)
    assert done.returncode == 69, done.stderr
    assert "redis://127.0.0.1:1/0" in one_error_line(done.stderr)


@pytest.mark.parametrize("listed", ["tasks_nowhere_zz", "{name}.nowhere"])
def test_include_naming_a_missing_module_is_one_line(tmp_path: Path, listed: str) -> None:
    name = f"mk_{uuid.uuid4().hex[:8]}"
    module = listed.format(name=name)
    write(tmp_path, f"{name}/__init__.py", "")
    write(tmp_path, f"{name}/celery.py", f"""
        from celeriac import Celery
        app = Celery({name!r}, broker="memory://inc", include=[{module!r}])
    """)
    done = run_cli(["-A", name, "worker", "-P", "solo"], tmp_path)
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        f"Error: include names the module {module!r}, which cannot be imported "
        f"(ModuleNotFoundError: No module named {module!r}): correct the name, or run from "
        "the directory that holds it (--workdir)")


def test_a_missing_import_inside_an_included_module_names_that_module(
        project: tuple[Path, str]) -> None:
    # not the include's fault: the line is the included module's own import
    root, name = project
    write(root, f"{name}/tasks.py", "import requests_nowhere_zz\n")
    done = run_cli(["-A", name, "worker", "-P", "solo"], root)
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        f"Error: {name}/tasks.py:1: ModuleNotFoundError: No module named 'requests_nowhere_zz'")
