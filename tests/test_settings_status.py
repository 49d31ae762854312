"""Honest settings: each setting's status, the warning for ones that have no effect, the doc."""

from __future__ import annotations

import importlib.util
import linecache
import re
import sys
import types
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import celeriac
from celeriac import Celery, config
from celeriac.config import SETTINGS, STATUSES, Settings
from celeriac.exceptions import (
    CeleriacWarning,
    SettingNotImplementedWarning,
    UnknownSettingWarning,
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "celeriac"


def _package_source() -> str:
    """Every module of celeriac but the settings table itself."""
    return "\n".join(
        path.read_text(encoding="utf-8")
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "config.py"
    )


# -- the table ------------------------------------------------------------------------------------


def test_every_setting_has_a_known_status() -> None:
    assert {s.status for s in SETTINGS.values()} <= set(STATUSES)


def test_settings_without_effect_say_why() -> None:
    silent = [s.name for s in SETTINGS.values() if s.status != "implemented" and not s.note]
    assert silent == []


def test_implemented_settings_have_no_excuse() -> None:
    excused = [s.name for s in SETTINGS.values() if s.status == "implemented" and s.note]
    assert excused == []


@pytest.mark.parametrize(
    "name", sorted(n for n, s in SETTINGS.items() if s.status == "implemented")
)
def test_implemented_setting_is_read_somewhere(name: str) -> None:
    # conf.name, conf.get("name"), conf["name"] or a derived-settings field of that name.
    pattern = re.compile(rf"\.{name}\b|[\"']{name}[\"']")
    assert pattern.search(_package_source()), f"{name} is marked implemented but never read"


def test_well_known_unimplemented_settings_are_not_called_implemented() -> None:
    for name in (
        "result_compression",
        "task_annotations",
        "worker_logfile",
        "worker_consumer",
    ):
        assert SETTINGS[name].status == "unsupported", name


# -- the warning ----------------------------------------------------------------------------------


@pytest.fixture
def config_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"userconf_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "CELERY_BROKER_URL = 'memory://'\n"
        "CELERY_TASK_SERIALIZER = 'json'\n"
        "\n"
        "CELERY_RESULT_COMPRESSION = 'gzip'\n"
        "CELERYD_CONSUMER = 'proj.consumer:Consumer'\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_warning_class_is_a_celeriac_warning() -> None:
    assert issubclass(SettingNotImplementedWarning, CeleriacWarning)
    assert "SettingNotImplementedWarning" in celeriac.exceptions.__all__
    assert "SettingNotImplementedWarning" in (celeriac.exceptions.__doc__ or "")


def test_config_module_warns_with_the_users_spelling_file_and_line(config_module: str) -> None:
    app = Celery("t", set_as_current=False)
    with pytest.warns(SettingNotImplementedWarning) as record:
        app.config_from_object(config_module, namespace="CELERY")
    by_text = {str(w.message).split("'")[1]: w for w in record}
    assert set(by_text) == {"CELERY_RESULT_COMPRESSION", "CELERYD_CONSUMER"}
    filename = sys.modules[config_module].__file__
    assert by_text["CELERY_RESULT_COMPRESSION"].filename == filename
    assert by_text["CELERY_RESULT_COMPRESSION"].lineno == 4
    assert by_text["CELERYD_CONSUMER"].lineno == 5
    assert "not compressed" in str(by_text["CELERY_RESULT_COMPRESSION"].message)
    assert app.conf.result_compression == "gzip"  # still stored, as Celery would


def test_warns_once_per_setting_per_process() -> None:
    conf = Settings()
    with pytest.warns(SettingNotImplementedWarning):
        conf.result_compression = "gzip"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conf.result_compression = "bzip2"
        Settings().CELERY_RESULT_COMPRESSION = "zlib"


def test_warning_points_at_the_line_that_sets_it() -> None:
    conf = Settings()
    with pytest.warns(SettingNotImplementedWarning, match="'CELERY_RESULT_COMPRESSION'") as record:
        conf.update(CELERY_RESULT_COMPRESSION="gzip")
    assert record[0].filename == __file__
    assert record[0].lineno == sys._getframe().f_lineno - 2


def test_celery_keyword_arguments_point_at_the_caller() -> None:
    with pytest.warns(SettingNotImplementedWarning, match="'task_annotations'") as record:
        Celery("t", set_as_current=False, task_annotations={"*": {"rate_limit": "1/s"}})
    assert record[0].filename == __file__


def test_config_class_points_at_its_module() -> None:
    class Config:
        worker_consumer = "proj.consumer:Consumer"

    app = Celery("t", set_as_current=False)
    with pytest.warns(SettingNotImplementedWarning) as record:
        app.config_from_object(Config)
    assert record[0].filename == __file__
    line = linecache.getline(record[0].filename, record[0].lineno)
    assert line.strip() == 'worker_consumer = "proj.consumer:Consumer"'


def test_no_warning_for_implemented_compat_or_default_values() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conf = Settings()
        conf.task_acks_late = True  # implemented
        conf.task_default_exchange = "tasks"  # compat: AMQP only
        conf.task_protocol = 2  # unsupported, but the default
        conf.CELERY_RESULT_COMPRESSION = None  # the default
        conf.update(worker_max_memory_per_child=None, broker_connection_retry=True)


def test_namespaced_typo_names_the_users_spelling_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"typoconf_{uuid.uuid4().hex}"
    path = tmp_path / f"{name}.py"
    path.write_text("DEBUG = True\nCELERY_BROKER_ULR = 'memory://'\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = Celery("t", set_as_current=False)
    try:
        with pytest.warns(
            UnknownSettingWarning, match="'CELERY_BROKER_ULR'.*'CELERY_BROKER_URL'"
        ) as record:
            app.config_from_object(name, namespace="CELERY")
    finally:
        sys.modules.pop(name, None)
    assert record[0].filename == str(path)
    assert record[0].lineno == 2


def test_module_object_without_the_assignment_points_at_the_caller() -> None:
    module = types.ModuleType("made_up")
    module.result_compression = "zlib"  # type: ignore[attr-defined]
    app = Celery("t", set_as_current=False)
    with pytest.warns(SettingNotImplementedWarning) as record:
        app.config_from_object(module)
    assert record[0].filename == __file__


# -- the doc --------------------------------------------------------------------------------------


def _generator() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_settings_doc", ROOT / "scripts" / "gen_settings_doc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_doc_matches_the_generator() -> None:
    gen = _generator()
    current = gen.DOC.read_text(encoding="utf-8")
    assert current == gen.expected(current), "run: python scripts/gen_settings_doc.py"


def test_doc_gives_every_settings_status() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for setting in SETTINGS.values():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{setting.name}` |"))
        assert f"| {setting.status}" in row


def test_config_warned_set_is_reset_per_test() -> None:
    assert not config._WARNED
