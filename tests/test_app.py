"""The app: configuration sources, old/new setting names, defaults, lazy transports."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.exceptions import ImproperlyConfigured


@pytest.fixture
def config_module() -> Iterator[types.ModuleType]:
    module = types.ModuleType("celeriac_test_cfg")
    module.BROKER_URL = "memory://from-old-name"  # type: ignore[attr-defined]
    module.CELERY_RESULT_SERIALIZER = "json"  # type: ignore[attr-defined]
    module.task_default_queue = "jobs"  # type: ignore[attr-defined]

    class Config:
        broker_url = "memory://from-class"
        task_acks_late = True

    module.Config = Config  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_constructor_arguments_set_urls() -> None:
    app = Celery("proj", broker="memory://a", backend="memory://b", set_as_current=False)
    assert app.conf.broker_url == "memory://a"
    assert app.conf.BROKER_URL == "memory://a"
    assert app.conf.CELERY_RESULT_BACKEND == "memory://b"
    assert app.main == "proj"


def test_config_from_module_path(config_module: types.ModuleType) -> None:
    app = Celery(set_as_current=False)
    app.config_from_object("celeriac_test_cfg")
    assert app.conf.broker_url == "memory://from-old-name"
    assert app.conf.task_default_queue == "jobs"
    assert app.conf.CELERY_DEFAULT_QUEUE == "jobs"


def test_config_from_module_attr(config_module: types.ModuleType) -> None:
    for source in ("celeriac_test_cfg:Config", "celeriac_test_cfg.Config", config_module.Config):
        app = Celery(set_as_current=False)
        app.config_from_object(source)
        assert app.conf.broker_url == "memory://from-class"
        assert app.conf.task_acks_late is True
        assert app.conf.CELERY_ACKS_LATE is True


def test_config_namespace(config_module: types.ModuleType) -> None:
    settings = types.SimpleNamespace(
        CELERY_BROKER_URL="memory://ns",
        CELERY_TASK_ALWAYS_EAGER=True,
        BROKER_URL="memory://no",
        CELERY_TIMEZONE="Asia/Shanghai",
    )
    app = Celery(set_as_current=False)
    app.config_from_object(settings, namespace="CELERY")
    assert app.conf.broker_url == "memory://ns"
    assert app.conf.task_always_eager is True
    assert str(app.timezone) == "Asia/Shanghai"


def test_config_errors() -> None:
    app = Celery(set_as_current=False)
    with pytest.raises(ImproperlyConfigured):
        app.config_from_object("no_such_module_celeriac_xyz")
    app.config_from_object("no_such_module_celeriac_xyz", silent=True)


def test_conf_update_mixed_names() -> None:
    app = Celery(set_as_current=False)
    app.conf.update(CELERYD_CONCURRENCY=3, worker_prefetch_multiplier=2, CELERY_TIMEZONE="UTC")
    assert app.conf.worker_concurrency == 3
    assert app.conf.CELERYD_PREFETCH_MULTIPLIER == 2


def test_unknown_setting_warns_with_suggestion() -> None:
    app = Celery(set_as_current=False)
    with pytest.warns(UserWarning, match="task_serializer"):
        app.conf.update(task_serialiser="json")


def test_defaults_embedded_sqlite() -> None:
    app = Celery(set_as_current=False)
    assert app.broker_url == "sqlite:///celeriac.db"
    assert app.result_backend_url == "sqlite:///celeriac.db"
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_default_queue == "celery"


def test_unknown_broker_scheme_is_clear() -> None:
    app = Celery(broker="nosuch://x", set_as_current=False)
    with pytest.raises(ImproperlyConfigured, match="nosuch"):
        _ = app.broker


def test_include_and_autodiscover(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    pkg = root / "discpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text(
        "from celeriac import shared_task\n@shared_task\ndef found():\n    return 1\n"
    )
    (root / "incmod.py").write_text(
        "from celeriac import shared_task\n@shared_task\ndef included():\n    return 2\n"
    )
    monkeypatch.syspath_prepend(str(root))
    app = Celery("disc", broker="memory://disc", include=["incmod"])
    app.autodiscover_tasks(["discpkg", "missingpkg_celeriac"])
    names = set(app.tasks)
    assert "discpkg.tasks.found" in names
    assert "incmod.included" in names
    for mod in ("discpkg", "discpkg.tasks", "incmod"):
        sys.modules.pop(mod, None)


def test_cached_settings_follow_configuration_changes() -> None:
    app = Celery(broker="memory://cache-follow", set_as_current=False)
    assert app.accept_content == {"application/json"}
    assert app.publish_settings().default_queue == "celery"
    app.conf.accept_content = ["json", "pickle"]
    app.conf.task_default_queue = "elsewhere"
    app.conf.CELERY_TRACK_STARTED = True
    assert "application/x-python-serialize" in app.accept_content
    assert app.publish_settings().default_queue == "elsewhere"
    assert app.trace_settings().track_started is True
