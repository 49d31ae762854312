"""Tests of celeriac.config: the settings table, Settings, read_object, load_source, coerce."""

from __future__ import annotations

import contextlib
import copy
import pickle
import sys
import types
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from celeriac.config import (
    OLD_TO_NEW,
    SECTIONS,
    SETTINGS,
    TYPES,
    Setting,
    Settings,
    canonical_name,
    closest_setting,
    coerce,
    load_source,
    read_object,
)
from celeriac.exceptions import (
    ImproperlyConfigured,
    SettingNotImplementedWarning,
    UnknownSettingWarning,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

# -- the table --------------------------------------------------------------------------------

_REQUIRED_TEXT = """
accept_content enable_utc imports include timezone result_accept_content
beat_schedule beat_scheduler beat_schedule_filename beat_sync_every beat_max_loop_interval
beat_cron_starting_deadline
broker_url broker_read_url broker_write_url broker_transport broker_transport_options
broker_connection_timeout broker_connection_retry broker_connection_retry_on_startup
broker_connection_max_retries broker_failover_strategy broker_heartbeat broker_login_method
broker_pool_limit broker_use_ssl broker_channel_error_retry
cache_backend cache_backend_options
database_url database_engine_options database_short_lived_sessions database_table_names
database_table_schemas
redis_backend_health_check_interval redis_max_connections redis_socket_connect_timeout
redis_socket_timeout redis_retry_on_timeout redis_socket_keepalive redis_backend_use_ssl
redis_username redis_password redis_host redis_port redis_db
result_backend result_backend_transport_options result_backend_always_retry
result_backend_max_retries result_backend_base_sleep_between_retries_ms
result_backend_max_sleep_between_retries_ms result_cache_max result_compression
result_exchange result_exchange_type result_expires result_persistent result_serializer
result_extended result_chord_join_timeout result_chord_retry_interval
security_key security_certificate security_cert_store security_digest security_key_password
task_acks_late task_acks_on_failure_or_timeout task_always_eager task_annotations
task_compression task_create_missing_queues task_default_delivery_mode task_default_exchange
task_default_exchange_type task_default_priority task_default_queue task_default_rate_limit
task_default_routing_key task_eager_propagates task_store_eager_result task_ignore_result
task_publish_retry task_publish_retry_policy task_queues task_routes task_send_sent_event
task_serializer task_soft_time_limit task_time_limit task_track_started
task_reject_on_worker_lost task_remote_tracebacks task_inherit_parent_priority
task_queue_max_priority task_protocol task_allow_error_cb_on_chord_header task_default_expires
task_store_errors_even_if_ignored
worker_concurrency worker_prefetch_multiplier worker_max_tasks_per_child
worker_max_memory_per_child worker_disable_rate_limits worker_state_db worker_timer_precision
worker_enable_remote_control worker_send_task_events worker_hijack_root_logger worker_log_color
worker_log_format worker_task_log_format worker_redirect_stdouts worker_redirect_stdouts_level
worker_pool worker_pool_restarts worker_autoscaler worker_consumer worker_timer
worker_lost_wait worker_direct worker_cancel_long_running_tasks_on_connection_loss
worker_proc_alive_timeout worker_deduplicate_successful_tasks
worker_enable_prefetch_count_reduction worker_soft_shutdown_timeout worker_detect_quorum_queues
worker_lease_seconds worker_early_ack_batch
event_serializer event_queue_ttl control_exchange control_queue_ttl
"""
REQUIRED = _REQUIRED_TEXT.split()

OLD_EXAMPLES = {
    "BROKER_URL": "broker_url",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_RESULT_SERIALIZER": "result_serializer",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERY_TIMEZONE": "timezone",
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERY_ACCEPT_CONTENT": "accept_content",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERY_ACKS_LATE": "task_acks_late",
    "CELERY_IGNORE_RESULT": "task_ignore_result",
    "CELERY_TRACK_STARTED": "task_track_started",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "CELERYD_MAX_TASKS_PER_CHILD": "worker_max_tasks_per_child",
    "CELERY_ROUTES": "task_routes",
    "CELERY_QUEUES": "task_queues",
    "CELERY_DEFAULT_QUEUE": "task_default_queue",
    "CELERY_ENABLE_UTC": "enable_utc",
    "CELERY_IMPORTS": "imports",
    "CELERY_INCLUDE": "include",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERYD_POOL": "worker_pool",
    "CELERY_MAX_CACHED_RESULTS": "result_cache_max",
    "CELERY_MESSAGE_COMPRESSION": "task_compression",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    "CELERY_RESULT_DBURI": "database_url",
    "CELERY_REDIS_MAX_CONNECTIONS": "redis_max_connections",
}


@pytest.mark.parametrize("name", REQUIRED)
def test_required_setting_is_supported(name: str) -> None:
    assert name in SETTINGS
    assert SETTINGS[name].name == name


@pytest.mark.parametrize(("old", "new"), sorted(OLD_EXAMPLES.items()))
def test_old_name_maps_like_celery(old: str, new: str) -> None:
    assert OLD_TO_NEW[old] == new
    assert old in SETTINGS[new].old_names


def test_table_is_consistent() -> None:
    for name, setting in SETTINGS.items():
        assert isinstance(setting, Setting)
        assert name == setting.name == name.lower()
        assert setting.type in TYPES
        assert setting.doc and "\n" not in setting.doc
        for old in setting.old_names:
            assert old == old.upper()
            assert OLD_TO_NEW[old] == name
    assert set(OLD_TO_NEW.values()) <= set(SETTINGS)
    assert sum(len(s.old_names) for s in SETTINGS.values()) == len(OLD_TO_NEW)
    in_sections = [name for names in SECTIONS.values() for name in names]
    assert sorted(in_sections) == sorted(SETTINGS)


def test_setting_is_frozen() -> None:
    with pytest.raises(AttributeError):
        SETTINGS["task_serializer"].default = "pickle"  # type: ignore[misc]


def test_celeriac_additions_have_no_old_name() -> None:
    assert SETTINGS["worker_lease_seconds"].default == 10.0
    assert SETTINGS["worker_lease_seconds"].old_names == ()
    assert SETTINGS["worker_early_ack_batch"].default == 1
    assert SETTINGS["worker_early_ack_batch"].old_names == ()


# -- canonical_name ---------------------------------------------------------------------------


def test_canonical_name() -> None:
    assert canonical_name("task_serializer") == "task_serializer"
    assert canonical_name("CELERY_TASK_SERIALIZER") == "task_serializer"
    assert canonical_name("CELERYD_CONCURRENCY") == "worker_concurrency"
    # The Django spelling: CELERY_ + the upper-cased new name.
    assert canonical_name("CELERY_BROKER_URL") == "broker_url"
    assert canonical_name("CELERY_WORKER_CONCURRENCY") == "worker_concurrency"
    assert canonical_name("no_such_setting") is None


@pytest.mark.parametrize("name", ["TASK_SERIALIZER", "Task_Serializer", "celery_task_serializer"])
def test_canonical_name_is_case_sensitive(name: str) -> None:
    assert canonical_name(name) is None


# -- Settings: names ----------------------------------------------------------------------------


def _warns_if_unsupported(name: str, spelt: str) -> contextlib.AbstractContextManager[Any]:
    """Setting an unsupported setting away from its default warns (once per process)."""
    if SETTINGS[name].status != "unsupported":
        return contextlib.nullcontext()
    return pytest.warns(SettingNotImplementedWarning, match=f"'{spelt}'")


@pytest.mark.parametrize(("old", "new"), sorted(OLD_TO_NEW.items()))
def test_old_and_new_names_are_one_value(old: str, new: str) -> None:
    marker = object()
    settings = Settings()
    with _warns_if_unsupported(new, old):
        settings[old] = marker
    assert settings[new] is marker
    assert settings[old] is marker
    assert settings.changes() == {new: marker}

    settings = Settings()
    settings[new] = marker
    assert settings[old] is marker
    assert getattr(settings, old) is marker


def test_attribute_access() -> None:
    settings = Settings()
    settings.task_serializer = "yaml"
    assert settings.task_serializer == "yaml"
    assert settings.CELERY_TASK_SERIALIZER == "yaml"
    assert settings["task_serializer"] == "yaml"

    settings.BROKER_URL = "redis://localhost/1"
    assert settings.broker_url == "redis://localhost/1"
    assert settings.CELERY_BROKER_URL == "redis://localhost/1"

    del settings.broker_url
    assert settings.broker_url is None


def test_missing_attribute_suggests_the_setting() -> None:
    settings = Settings()
    with pytest.raises(AttributeError, match="did you mean 'task_serializer'"):
        _ = settings.task_serializr
    with pytest.raises(AttributeError):
        _ = settings.completely_unrelated_thing
    with pytest.raises(AttributeError):
        del settings.completely_unrelated_thing
    assert not hasattr(settings, "_private")


def test_keys_are_new_names() -> None:
    settings = Settings({"CELERYD_CONCURRENCY": 2})
    keys = set(settings)
    assert keys == set(SETTINGS)
    assert len(settings) == len(SETTINGS)
    assert "CELERYD_CONCURRENCY" in settings
    assert "worker_concurrency" in settings
    assert "unknown_name" not in settings
    assert 42 not in settings
    assert dict(settings)["worker_concurrency"] == 2
    assert settings.get("CELERYD_CONCURRENCY") == 2
    assert settings.get("unknown_name", "fallback") == "fallback"


# -- Settings: defaults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("task_serializer", "json"),
        ("result_serializer", "json"),
        ("accept_content", ["json"]),
        ("result_accept_content", None),
        ("timezone", None),
        ("enable_utc", True),
        ("result_expires", 86400),
        ("worker_prefetch_multiplier", None),
        ("worker_concurrency", None),
        ("task_default_queue", "celery"),
        ("task_acks_late", False),
        ("task_acks_on_failure_or_timeout", True),
        ("task_reject_on_worker_lost", None),
        ("broker_url", None),
        ("result_backend", None),
        ("beat_schedule", {}),
        ("task_default_priority", None),
        ("broker_connection_retry", True),
        ("broker_connection_max_retries", 100),
        ("broker_pool_limit", 10),
        ("broker_transport_options", {}),
        ("task_protocol", 2),
        ("task_default_exchange_type", "direct"),
        ("result_cache_max", -1),
        ("redis_socket_timeout", 120.0),
        ("worker_pool", "prefork"),
        ("worker_lease_seconds", 10.0),
        ("worker_early_ack_batch", 1),
        ("beat_schedule_filename", "celerybeat-schedule"),
        ("security_digest", "sha256"),
    ],
)
def test_defaults(name: str, default: Any) -> None:
    settings = Settings()
    assert settings[name] == default
    assert SETTINGS[name].default == default


def test_result_expires_accepts_timedelta() -> None:
    settings = Settings({"result_expires": timedelta(hours=1)})
    assert settings.result_expires == timedelta(hours=1)
    old_spelling = settings.CELERY_TASK_RESULT_EXPIRES
    assert old_spelling == timedelta(hours=1)


def test_mutable_defaults_are_not_shared() -> None:
    first, second = Settings(), Settings()
    first.beat_schedule["tick"] = {"task": "t", "schedule": 1.0}
    first.accept_content.append("pickle")
    first.task_publish_retry_policy["max_retries"] = 99
    assert second.beat_schedule == {}
    assert second.accept_content == ["json"]
    assert second.task_publish_retry_policy["max_retries"] is None
    assert SETTINGS["beat_schedule"].default == {}
    assert SETTINGS["accept_content"].default == ["json"]
    assert Settings().task_publish_retry_policy["max_retries"] is None


# -- Settings: update, changes, copy ------------------------------------------------------------


def test_update_with_mixed_names() -> None:
    settings = Settings()
    settings.update(
        {"BROKER_URL": "redis://a", "task_acks_late": True},
        CELERYD_CONCURRENCY=8,
        result_backend="redis://b",
    )
    assert settings.broker_url == "redis://a"
    assert settings.task_acks_late is True
    assert settings.worker_concurrency == 8
    assert settings.CELERY_RESULT_BACKEND == "redis://b"
    assert settings.changes() == {
        "broker_url": "redis://a",
        "task_acks_late": True,
        "worker_concurrency": 8,
        "result_backend": "redis://b",
    }


def test_update_accepts_pairs_and_settings() -> None:
    settings = Settings()
    settings.update([("CELERY_TIMEZONE", "Europe/Paris"), ("enable_utc", False)])
    assert settings.timezone == "Europe/Paris"
    assert settings.enable_utc is False
    other = Settings()
    other.update(settings)
    assert other.timezone == "Europe/Paris"
    assert other.enable_utc is False


@pytest.mark.parametrize(
    "pairs",
    [
        [("task_serializer", "new"), ("CELERY_TASK_SERIALIZER", "old")],
        [("CELERY_TASK_SERIALIZER", "old"), ("task_serializer", "new")],
    ],
)
def test_new_spelling_wins_within_one_update(pairs: list[tuple[str, str]]) -> None:
    settings = Settings()
    settings.update(pairs)
    assert settings.task_serializer == "new"
    assert Settings(dict(pairs)).task_serializer == "new"


def test_later_update_overrides_earlier() -> None:
    settings = Settings({"task_serializer": "yaml"})
    settings.update(CELERY_TASK_SERIALIZER="msgpack")
    assert settings.task_serializer == "msgpack"


def test_changes_lists_only_user_settings() -> None:
    settings = Settings()
    assert settings.changes() == {}
    settings["CELERY_DEFAULT_QUEUE"] = "celery"  # set, even to the default value
    settings["my_own_value"] = 1
    assert settings.changes() == {"task_default_queue": "celery", "my_own_value": 1}
    assert settings.is_set("task_default_queue")
    assert settings.is_set("CELERY_DEFAULT_QUEUE")
    assert not settings.is_set("task_serializer")


def test_unknown_names_are_kept() -> None:
    settings = Settings({"my_own_value": 1, "MyMixedCase": 2})
    assert settings["my_own_value"] == 1
    assert settings.my_own_value == 1
    assert settings["MyMixedCase"] == 2
    assert "my_own_value" in set(settings)
    del settings["my_own_value"]
    assert "my_own_value" not in settings
    with pytest.raises(KeyError):
        del settings["my_own_value"]
    with pytest.raises(KeyError):
        _ = settings["never_set"]


def test_del_resets_known_setting_to_default() -> None:
    settings = Settings({"CELERY_TASK_SERIALIZER": "yaml", "beat_schedule": {"a": {}}})
    del settings["CELERY_TASK_SERIALIZER"]
    assert settings.task_serializer == "json"
    assert "task_serializer" in settings
    assert "task_serializer" not in settings.changes()
    assert settings.pop("beat_schedule") == {"a": {}}
    assert settings.beat_schedule == {}
    assert settings.changes() == {}


def test_setdefault() -> None:
    settings = Settings({"broker_url": "redis://set"})
    assert settings.setdefault("broker_url", "redis://other") == "redis://set"
    assert settings.setdefault("CELERY_RESULT_BACKEND", "redis://rb") == "redis://rb"
    assert settings.result_backend == "redis://rb"
    assert settings.setdefault("result_backend", "redis://again") == "redis://rb"
    assert settings.setdefault("my_value", 3) == 3
    assert settings.setdefault("my_value", 4) == 3


def test_clear_and_popitem() -> None:
    settings = Settings({"task_serializer": "yaml", "my_value": 1})
    assert settings.popitem() == ("my_value", 1)
    assert settings.popitem() == ("task_serializer", "yaml")
    assert settings.task_serializer == "json"
    with pytest.raises(KeyError):
        settings.popitem()
    settings.update(task_acks_late=True, another=2)
    settings.task_acks_late = False
    assert settings.popitem() == ("task_acks_late", False)
    settings.update(task_acks_late=True)
    settings.clear()
    assert settings.changes() == {}
    assert settings.task_acks_late is False
    assert "another" not in settings
    assert len(settings) == len(SETTINGS)


def test_copy_is_independent() -> None:
    settings = Settings({"task_serializer": "yaml", "my_value": [1]})
    settings.beat_schedule["tick"] = {"task": "t"}
    clone = settings.copy()
    assert isinstance(clone, Settings)
    assert clone == settings
    assert clone.changes() == settings.changes()
    clone.task_serializer = "msgpack"
    clone.beat_schedule["tock"] = {"task": "u"}
    clone["my_value"].append(2)
    assert settings.task_serializer == "yaml"
    assert set(settings.beat_schedule) == {"tick"}
    assert settings["my_value"] == [1]
    assert copy.copy(settings) == settings


def test_pickle_round_trip() -> None:
    settings = Settings({"task_serializer": "yaml", "my_value": 1})
    restored = pickle.loads(pickle.dumps(settings))
    assert restored == settings
    assert restored.changes() == settings.changes()
    assert restored.task_serializer == "yaml"


def test_repr_hides_values() -> None:
    settings = Settings({"broker_url": "redis://:secret@host/0"})
    assert "secret" not in repr(settings)
    assert "broker_url" in repr(settings)


def test_dir_lists_settings() -> None:
    names = dir(Settings({"my_value": 1}))
    assert "task_serializer" in names
    assert "my_value" in names
    assert "update" in names


def test_non_string_keys_are_rejected() -> None:
    settings = Settings()
    with pytest.raises(TypeError):
        settings[1] = "x"  # type: ignore[index]
    with pytest.raises(KeyError):
        _ = settings[1]  # type: ignore[index]


# -- unknown-name warnings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("task_serialiser", "task_serializer"),
        ("broker_ur", "broker_url"),
        ("worker_concurency", "worker_concurrency"),
        ("timezon", "timezone"),
        ("CELERY_TASK_SERIALISER", "CELERY_TASK_SERIALIZER"),
        ("CELERYD_CONCURENCY", "CELERYD_CONCURRENCY"),
        ("CELERYBEAT_SCHEDUEL", "CELERYBEAT_SCHEDULE"),
        ("BROKER_ULR", "BROKER_URL"),
        ("CELERY_BROKER_ULR", "CELERY_BROKER_URL"),
    ],
)
def test_typo_warns_with_suggestion(name: str, suggestion: str) -> None:
    expected = f"Unknown setting '{name}'; did you mean '{suggestion}'?"
    assert closest_setting(name) == suggestion
    settings = Settings()
    with pytest.warns(UnknownSettingWarning) as record:
        settings[name] = 1
    assert [str(w.message) for w in record] == [expected]
    assert settings[name] == 1  # stored anyway
    assert settings.changes() == {name: 1}


def test_typo_warns_through_every_way_of_setting() -> None:
    message = r"Unknown setting 'task_serialiser'; did you mean 'task_serializer'\?"
    with pytest.warns(UnknownSettingWarning, match=message):
        Settings({"task_serialiser": "json"})
    with pytest.warns(UnknownSettingWarning, match=message):
        Settings().update(task_serialiser="json")
    with pytest.warns(UnknownSettingWarning, match=message):
        Settings().task_serialiser = "json"
    with pytest.warns(UnknownSettingWarning, match=message):
        Settings().setdefault("task_serialiser", "json")


def test_warning_points_at_the_caller() -> None:
    with pytest.warns(UnknownSettingWarning) as record:
        Settings().update(task_serialiser="json")
    assert record[0].filename == __file__


@pytest.mark.parametrize(
    "name",
    [
        "my_setting",
        "secret_key",
        "my_app_option",
        "database_name",
        "redis_url",
        "sentry_dsn",
        "broker_pool",
        "DEBUG",
        "INSTALLED_APPS",
        "SECRET_KEY",
        "CELERY_CUSTOM_THING",
        "MixedCaseName",
        "TIME_ZONE",
    ],
)
def test_unrelated_names_do_not_warn(name: str) -> None:
    assert closest_setting(name) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = Settings({name: 1})
        settings[name] = 2
    assert settings[name] == 2


def test_known_names_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Settings({"task_serializer": "json", "CELERY_ALWAYS_EAGER": True, "CELERY_BROKER_URL": ""})
    assert closest_setting("task_serializer") is None


def test_mixing_old_and_new_names_is_allowed() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = Settings({"BROKER_URL": "redis://a", "result_backend": "redis://b"})
    assert settings.broker_url == "redis://a"
    assert settings.result_backend == "redis://b"


# -- read_object --------------------------------------------------------------------------------


def _router(name: str) -> str:
    return name


def _module(**attrs: Any) -> types.ModuleType:
    module = types.ModuleType("fake_celeryconfig")
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def test_read_object_module() -> None:
    from datetime import timezone

    def failover(servers: list[str]) -> Iterator[str]:
        yield from servers

    module = _module(
        broker_url="redis://localhost",
        CELERY_RESULT_BACKEND="redis://results",
        CELERYD_CONCURRENCY=4,
        task_routes=_router,  # callable value of a known setting: kept
        broker_failover_strategy=failover,
        my_own_value=1,
        MY_CONSTANT=2,
        MixedCase=3,  # neither all lower nor all upper case
        os=sys,  # a module
        helper=lambda: None,  # a callable under an unknown name
        timezone=timezone,  # `from datetime import timezone`
        _private=4,
    )
    assert read_object(module) == {
        "broker_url": "redis://localhost",
        "result_backend": "redis://results",
        "worker_concurrency": 4,
        "task_routes": _router,
        "broker_failover_strategy": failover,
        "my_own_value": 1,
        "MY_CONSTANT": 2,
    }


def test_read_object_real_module(make_module: Callable[..., str]) -> None:
    name = make_module(
        "from datetime import timedelta, timezone\n"
        "import os\n"
        "broker_url = 'memory://'\n"
        "result_expires = timedelta(hours=2)\n"
        "CELERY_ALWAYS_EAGER = True\n"
        "def route_task(name, args, kwargs, options, task=None, **kw):\n"
        "    return None\n"
        "task_routes = (route_task,)\n"
    )
    module = sys.modules[name]
    assert read_object(module) == {
        "broker_url": "memory://",
        "result_expires": timedelta(hours=2),
        "task_always_eager": True,
        "task_routes": (module.route_task,),
    }


def test_read_object_class_and_instance() -> None:
    class Config:
        broker_url = "redis://class"
        CELERY_TASK_SERIALIZER = "json"
        task_acks_late = True

        def method(self) -> None:
            pass

        @property
        def result_backend(self) -> str:
            return "redis://property"

    expected = {"broker_url": "redis://class", "task_serializer": "json", "task_acks_late": True}
    assert read_object(Config) == {**expected, "result_backend": Config.result_backend}
    assert read_object(Config()) == {**expected, "result_backend": "redis://property"}


def test_read_object_mapping() -> None:
    source = {
        "BROKER_URL": "redis://m",
        "task_acks_late": True,
        "MixedCase": 1,
        "callable_value": _router,
        3: "not a name",
    }
    assert read_object(source) == {
        "broker_url": "redis://m",
        "task_acks_late": True,
        "MixedCase": 1,
        "callable_value": _router,
    }


def test_read_object_prefers_new_spelling() -> None:
    source = {"CELERY_TASK_SERIALIZER": "old", "task_serializer": "new"}
    assert read_object(source) == {"task_serializer": "new"}
    source = {"task_serializer": "new", "CELERY_TASK_SERIALIZER": "old"}
    assert read_object(source) == {"task_serializer": "new"}


def test_read_object_namespace() -> None:
    django_settings = _module(
        DEBUG=True,
        INSTALLED_APPS=["app"],
        TIME_ZONE="UTC",
        CELERY_BROKER_URL="redis://dj",
        CELERY_TASK_ALWAYS_EAGER=True,
        CELERY_RESULT_BACKEND="redis://rb",
        CELERY_BEAT_SCHEDULE={"tick": {"task": "t", "schedule": 5}},
        CELERY_TIMEZONE="Europe/Paris",
        CELERY_WORKER_CONCURRENCY=3,
        CELERY_TASK_SERIALISER="json",  # typo: kept under its stripped name
        my_lower_value=1,
    )
    assert read_object(django_settings, namespace="CELERY") == {
        "broker_url": "redis://dj",
        "task_always_eager": True,
        "result_backend": "redis://rb",
        "beat_schedule": {"tick": {"task": "t", "schedule": 5}},
        "timezone": "Europe/Paris",
        "worker_concurrency": 3,
        "task_serialiser": "json",
    }


def test_read_object_namespace_reads_old_names() -> None:
    source = {
        "CELERY_ALWAYS_EAGER": True,
        "CELERYD_CONCURRENCY": 2,
        "CELERY_TASK_RESULT_EXPIRES": 10,
        "BROKER_URL": "redis://old",
        "DEBUG": True,
    }
    assert read_object(source, namespace="CELERY") == {
        "task_always_eager": True,
        "worker_concurrency": 2,
        "result_expires": 10,
        "broker_url": "redis://old",
    }


def test_read_object_namespace_spelling_precedence() -> None:
    source = {
        "BROKER_URL": "old",
        "broker_url": "new",
        "CELERY_BROKER_URL": "namespaced",
        "CELERY_ALWAYS_EAGER": False,
        "CELERY_TASK_ALWAYS_EAGER": True,
    }
    assert read_object(source, namespace="CELERY") == {
        "broker_url": "namespaced",
        "task_always_eager": True,
    }
    # A trailing underscore or lowercase namespace means the same.
    assert read_object(source, namespace="celery_") == read_object(source, namespace="CELERY")


def test_read_object_skips_attributes_that_fail() -> None:
    class Lazy:
        broker_url = "redis://ok"

        @property
        def SECRET_KEY(self) -> str:  # Django raises like this when it is unset
            raise RuntimeError("not configured")

    assert read_object(Lazy()) == {"broker_url": "redis://ok"}


def test_read_object_then_settings_warns_for_typos() -> None:
    values = read_object({"task_serialiser": "json", "DEBUG": True})
    with pytest.warns(UnknownSettingWarning, match="did you mean 'task_serializer'"):
        Settings(values)


def test_django_settings_namespace() -> None:
    pytest.importorskip("django")
    from django.conf import LazySettings

    django_settings = LazySettings()
    django_settings.configure(
        CELERY_BROKER_URL="redis://django",
        CELERY_TASK_ALWAYS_EAGER=True,
        CELERYD_PREFETCH_MULTIPLIER=1,
    )
    assert read_object(django_settings, namespace="CELERY") == {
        "broker_url": "redis://django",
        "task_always_eager": True,
        "worker_prefetch_multiplier": 1,
    }
    settings = Settings(read_object(django_settings))  # no namespace: no typo warnings either
    assert settings.broker_url == "redis://django"
    assert settings["DEBUG"] is False


# -- load_source --------------------------------------------------------------------------------


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Write a uniquely named module (or package.module) under tmp_path; return its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def make(source: str, package: bool = False) -> str:
        name = f"cfgmod_{uuid.uuid4().hex}"
        if package:
            pkg = tmp_path / name
            pkg.mkdir()
            (pkg / "__init__.py").write_text("")
            (pkg / "settings.py").write_text(source)
            created.extend([name, f"{name}.settings"])
            __import__(f"{name}.settings")
            return f"{name}.settings"
        (tmp_path / f"{name}.py").write_text(source)
        created.append(name)
        __import__(name)
        return name

    yield make
    for name in created:
        sys.modules.pop(name, None)


CONFIG_SOURCE = """
broker_url = "redis://from-module"

class Config:
    broker_url = "redis://from-class"

class Outer:
    class Inner:
        broker_url = "redis://inner"
"""


def test_load_source_object_is_returned_as_is() -> None:
    obj = object()
    assert load_source(obj) is obj
    mapping = {"broker_url": "x"}
    assert load_source(mapping) is mapping


def test_load_source_module(make_module: Callable[..., str]) -> None:
    name = make_module(CONFIG_SOURCE)
    module = load_source(name)
    assert isinstance(module, types.ModuleType)
    assert module.broker_url == "redis://from-module"
    assert read_object(load_source(name)) == {"broker_url": "redis://from-module"}


def test_load_source_module_colon_attribute(make_module: Callable[..., str]) -> None:
    name = make_module(CONFIG_SOURCE)
    assert load_source(f"{name}:Config").broker_url == "redis://from-class"
    assert load_source(f"{name}:Outer.Inner").broker_url == "redis://inner"
    assert load_source(f"{name}:") is sys.modules[name]


def test_load_source_module_dot_attribute(make_module: Callable[..., str]) -> None:
    name = make_module(CONFIG_SOURCE)
    assert load_source(f"{name}.Config").broker_url == "redis://from-class"


def test_load_source_package_module(make_module: Callable[..., str]) -> None:
    name = make_module(CONFIG_SOURCE, package=True)
    sys.modules.pop(name)  # not imported yet: load_source must import the submodule
    assert load_source(name).broker_url == "redis://from-module"
    assert load_source(f"{name}.Config").broker_url == "redis://from-class"
    assert load_source(f"{name}:Config").broker_url == "redis://from-class"


@pytest.mark.parametrize(
    "path",
    [
        "celeriac_no_such_module_xyz",
        "celeriac_no_such_module_xyz.settings",
        "celeriac_no_such_module_xyz:Config",
        "",
        ".relative",
    ],
)
def test_load_source_bad_path(path: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="Cannot load configuration"):
        load_source(path)


def test_load_source_missing_attribute(make_module: Callable[..., str]) -> None:
    name = make_module(CONFIG_SOURCE)
    with pytest.raises(ImproperlyConfigured, match="NoSuchThing"):
        load_source(f"{name}:NoSuchThing")
    with pytest.raises(ImproperlyConfigured, match="NoSuchThing"):
        load_source(f"{name}.NoSuchThing")


def test_load_source_reports_broken_imports_inside_the_module(
    make_module: Callable[..., str], tmp_path: Path
) -> None:
    name = make_module("broker_url = 'x'\n")
    (tmp_path / "broken_cfg_module_abc.py").write_text("import celeriac_missing_dependency_xyz\n")
    with pytest.raises(ImproperlyConfigured, match="celeriac_missing_dependency_xyz"):
        load_source("broken_cfg_module_abc")
    with pytest.raises(ImproperlyConfigured, match="celeriac_missing_dependency_xyz"):
        load_source("broken_cfg_module_abc.Config")
    sys.modules.pop("broken_cfg_module_abc", None)
    assert load_source(name).broker_url == "x"


def test_load_source_finds_module_in_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cwdcfg_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("broker_url = 'redis://cwd'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert load_source(name).broker_url == "redis://cwd"
        assert str(tmp_path) not in sys.path
    finally:
        sys.modules.pop(name, None)


def test_load_source_django_settings() -> None:
    pytest.importorskip("django")
    obj = load_source("django.conf:settings")
    assert type(obj).__name__ == "LazySettings"


# -- coerce -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("task_acks_late", "true", True),
        ("task_acks_late", "True", True),
        ("task_acks_late", "1", True),
        ("task_acks_late", "yes", True),
        ("task_acks_late", "ON", True),
        ("task_acks_late", "false", False),
        ("task_acks_late", "0", False),
        ("task_acks_late", "no", False),
        ("task_acks_late", " off ", False),
        ("CELERY_ACKS_LATE", "yes", True),
        ("task_reject_on_worker_lost", "none", None),
        ("worker_concurrency", "8", 8),
        ("CELERYD_CONCURRENCY", " 8 ", 8),
        ("worker_concurrency", "", None),
        ("worker_concurrency", "None", None),
        ("worker_prefetch_multiplier", "-1", -1),
        ("task_time_limit", "30", 30.0),
        ("task_time_limit", "2.5", 2.5),
        ("result_backend_max_retries", "inf", float("inf")),
        ("accept_content", "json", ["json"]),
        ("accept_content", "json, msgpack ,yaml", ["json", "msgpack", "yaml"]),
        ("accept_content", '["json", "pickle"]', ["json", "pickle"]),
        ("accept_content", "", []),
        ("imports", "proj.tasks,proj.more", ["proj.tasks", "proj.more"]),
        ("broker_transport_options", '{"visibility_timeout": 3600}', {"visibility_timeout": 3600}),
        ("beat_schedule", "{}", {}),
        ("broker_use_ssl", "true", True),
        ("broker_use_ssl", '{"cert_reqs": 2}', {"cert_reqs": 2}),
        ("task_routes", "proj.routing.route", "proj.routing.route"),
        ("task_default_delivery_mode", "persistent", "persistent"),
        ("task_default_delivery_mode", "2", 2),
        ("security_key_password", "pw", b"pw"),
        ("task_serializer", "msgpack", "msgpack"),
        ("timezone", "None", "None"),  # str settings take the text as it is
        ("broker_url", " redis://host ", " redis://host "),
        ("no_such_setting", "123", "123"),
    ],
)
def test_coerce(name: str, text: str, expected: Any) -> None:
    result = coerce(name, text)
    assert result == expected
    assert type(result) is type(expected)


def test_coerce_leaves_non_strings_alone() -> None:
    assert coerce("worker_concurrency", 4) == 4  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("task_acks_late", "maybe"),
        ("task_acks_late", ""),
        ("worker_concurrency", "four"),
        ("worker_concurrency", "2.5"),
        ("task_time_limit", "soon"),
        ("broker_transport_options", "[1, 2]"),
        ("broker_transport_options", "not json"),
        ("accept_content", "[not json"),
        ("accept_content", '["json", 1'),
    ],
)
def test_coerce_rejects_bad_text(name: str, text: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=repr(name)):
        coerce(name, text)


# -- docs ---------------------------------------------------------------------------------------


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [name for name in SETTINGS if f"| `{name}` |" not in text]
    assert missing == [], f"settings missing from {DOCS.name}: {missing}"


def test_every_old_name_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [old for old in OLD_TO_NEW if f"`{old}`" not in text]
    assert missing == [], f"old names missing from {DOCS.name}: {missing}"


def test_docs_tables_name_only_real_settings() -> None:
    text = DOCS.read_text(encoding="utf-8")
    first_cells = [line.split("`")[1] for line in text.splitlines() if line.startswith("| `")]
    # Lowercase first cells are setting rows; uppercase ones are the Django example table.
    rows = [cell for cell in first_cells if cell == cell.lower()]
    assert sorted(rows) == sorted(SETTINGS)
    django_rows = [cell for cell in first_cells if cell != cell.lower()]
    assert django_rows
    assert all(canonical_name(cell) is not None for cell in django_rows)
