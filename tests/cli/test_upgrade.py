"""``celeriac upgrade settings FILE``: old uppercase names become new ones, as Celery's does."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from celeriac.cli.main import main

OLD_SETTINGS = '''\
# CELERYD_CONCURRENCY in a comment stays
BROKER_URL = "redis://localhost/0"
CELERYD_CONCURRENCY = 4
CELERY_TASK_SERIALIZER = 'json'
CELERY_ROUTES = {"CELERY_RESULT_BACKEND": "a key", "note": "set BROKER_URL first"}
BROKER_URL_EXTRA = 1
'''


def _upgrade(path: Path, *options: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(main, ["upgrade", "settings", str(path), *options])
    return outcome.exit_code, outcome.output


def test_rewrites_old_names_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "celeryconfig.py"
    path.write_text(OLD_SETTINGS)
    code, output = _upgrade(path)
    assert code == 0, output
    assert "Changes to your settings have been made!" in output
    assert path.read_text() == '''\
# CELERYD_CONCURRENCY in a comment stays
broker_url = "redis://localhost/0"
worker_concurrency = 4
task_serializer = 'json'
task_routes = {"result_backend": "a key", "note": "set BROKER_URL first"}
BROKER_URL_EXTRA = 1
'''
    assert (tmp_path / "celeryconfig.py.orig").read_text() == OLD_SETTINGS


def test_the_result_loads_with_the_same_values(tmp_path: Path) -> None:
    from celeriac import Celery

    path = tmp_path / "upgraded_conf.py"
    path.write_text("BROKER_URL = 'memory://'\nCELERYD_CONCURRENCY = 3\n")
    assert _upgrade(path, "--no-backup")[0] == 0
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    app = Celery("t")
    app.conf.update({k: v for k, v in namespace.items() if not k.startswith("__")})
    assert app.conf.worker_concurrency == 3
    assert not (tmp_path / "upgraded_conf.py.orig").exists()


def test_django_style(tmp_path: Path) -> None:
    path = tmp_path / "settings.py"
    path.write_text("BROKER_URL = 'x'\nCELERYD_CONCURRENCY = 4\nCELERY_TASK_SERIALIZER = 'j'\n")
    code, _ = _upgrade(path, "--django", "--no-backup")
    assert code == 0
    assert path.read_text() == ("CELERY_BROKER_URL = 'x'\nCELERY_WORKER_CONCURRENCY = 4\n"
                                "CELERY_TASK_SERIALIZER = 'j'\n")
    compat = tmp_path / "compat.py"
    compat.write_text("CELERYBEAT_SCHEDULE = {}\n")
    assert _upgrade(compat, "--compat", "--no-backup")[0] == 0
    assert compat.read_text() == "CELERY_BEAT_SCHEDULE = {}\n"


def test_nothing_to_change(tmp_path: Path) -> None:
    path = tmp_path / "new.py"
    path.write_text("broker_url = 'x'\n")
    code, output = _upgrade(path)
    assert code == 0
    assert "Does not seem to require any changes" in output
    assert not (tmp_path / "new.py.orig").exists()


def test_line_endings_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "crlf.py"
    path.write_bytes(b"BROKER_URL = 'x'\r\nX = 1\r\n")
    assert _upgrade(path, "--no-backup")[0] == 0
    assert path.read_bytes() == b"broker_url = 'x'\r\nX = 1\r\n"


def test_not_python_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("BROKER_URL = '\n")
    code, output = _upgrade(path)
    assert code == 1
    assert "is not valid Python" in output and "Traceback" not in output
    assert path.read_text() == "BROKER_URL = '\n"


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, output = _upgrade(tmp_path / "nope.py")
    assert code == 2
    assert "nope.py" in output
