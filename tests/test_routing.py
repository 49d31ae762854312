"""task_routes lookup: exact names, globs, regexes, string routes, router functions, lists."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from celeriac.routing import lookup, queue_name


def test_exact_name() -> None:
    routes = {"proj.tasks.add": {"queue": "math"}, "proj.tasks.mul": {"queue": "other"}}
    assert lookup(routes, "proj.tasks.add") == {"queue": "math"}
    assert lookup(routes, "proj.tasks.sub") is None


def test_exact_name_keeps_all_route_options() -> None:
    routes = {"proj.tasks.add": {"queue": "math", "priority": 9, "routing_key": "m"}}
    assert lookup(routes, "proj.tasks.add") == {"queue": "math", "priority": 9,
                                                 "routing_key": "m"}


def test_glob_pattern() -> None:
    routes = {"proj.tasks.*": {"queue": "proj"}}
    assert lookup(routes, "proj.tasks.add") == {"queue": "proj"}
    assert lookup(routes, "proj.tasks.sub.deep") == {"queue": "proj"}
    assert lookup(routes, "proj.other.add") is None
    assert lookup(routes, "xproj.tasks.add") is None


def test_exact_name_wins_over_earlier_glob() -> None:
    routes = {"proj.tasks.*": {"queue": "proj"}, "proj.tasks.add": {"queue": "math"}}
    assert lookup(routes, "proj.tasks.add") == {"queue": "math"}
    assert lookup(routes, "proj.tasks.mul") == {"queue": "proj"}


def test_first_matching_glob_wins() -> None:
    routes = {"proj.*": {"queue": "first"}, "proj.tasks.*": {"queue": "second"}}
    assert lookup(routes, "proj.tasks.add") == {"queue": "first"}


def test_compiled_regex() -> None:
    routes = {re.compile(r"(video|image)\.tasks\..*"): {"queue": "media"}}
    assert lookup(routes, "video.tasks.encode") == {"queue": "media"}
    assert lookup(routes, "image.tasks.resize") == {"queue": "media"}
    assert lookup(routes, "audio.tasks.mix") is None


def test_string_route_is_a_queue_name() -> None:
    routes = {
        "proj.tasks.add": "math",
        "feeds.*": "feeds",
        re.compile(r"web\..*"): "web",
    }
    assert lookup(routes, "proj.tasks.add") == {"queue": "math"}
    assert lookup(routes, "feeds.tasks.fetch") == {"queue": "feeds"}
    assert lookup(routes, "web.tasks.render") == {"queue": "web"}


def test_callable_router_gets_celery_arguments() -> None:
    calls: list[tuple[Any, ...]] = []

    def router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
               **kw: Any) -> Mapping[str, Any] | None:
        calls.append((name, args, kwargs, options, task))
        if name.startswith("video."):
            return {"queue": "video", "priority": 1}
        return None

    assert lookup(router, "video.encode", (1,), {"k": 2}, {"countdown": 3}) == {
        "queue": "video", "priority": 1,
    }
    assert calls == [("video.encode", (1,), {"k": 2}, {"countdown": 3}, None)]
    assert lookup(router, "proj.add") is None
    assert calls[-1] == ("proj.add", (), {}, {}, None)


def test_router_without_task_parameter() -> None:
    def router(name: str, args: Any, kwargs: Any, options: Any) -> str | None:
        return "short" if name == "proj.add" else None

    assert lookup(router, "proj.add") == {"queue": "short"}
    assert lookup(router, "proj.mul") is None


def test_router_may_route_on_arguments() -> None:
    def router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
               **kw: Any) -> str | None:
        return "big" if kwargs.get("size", 0) > 100 else None

    assert lookup(router, "proj.resize", (), {"size": 500}) == {"queue": "big"}
    assert lookup(router, "proj.resize", (), {"size": 5}) is None


def test_list_of_routers_first_match_wins() -> None:
    def by_function(name: str, args: Any, kwargs: Any, options: Any,
                    task: Any = None, **kw: Any) -> Mapping[str, Any] | None:
        return {"queue": "from-function"} if name.endswith(".urgent") else None

    routes = [
        {"proj.tasks.add": {"queue": "math"}},
        by_function,
        {"proj.*": {"queue": "proj"}, "proj.tasks.urgent": {"queue": "never"}},
    ]
    assert lookup(routes, "proj.tasks.add") == {"queue": "math"}
    assert lookup(routes, "proj.tasks.urgent") == {"queue": "from-function"}
    assert lookup(routes, "proj.tasks.mul") == {"queue": "proj"}
    assert lookup(routes, "other.task") is None
    assert lookup(tuple(routes), "proj.tasks.urgent") == {"queue": "from-function"}


def test_list_skips_router_returning_none() -> None:
    routes = [lambda *a, **k: None, {"x": "second"}]
    assert lookup(routes, "x") == {"queue": "second"}


@pytest.mark.parametrize("routes", [None, {}, []], ids=["none", "empty-dict", "empty-list"])
def test_no_routes(routes: Any) -> None:
    assert lookup(routes, "proj.tasks.add") is None


def test_queue_name() -> None:
    class KombuLikeQueue:
        name = "kq"

    assert queue_name("plain") == "plain"
    assert queue_name(KombuLikeQueue()) == "kq"


def route_by_path(name: str, args: object, kwargs: object, options: object) -> dict[str, str]:
    return {"queue": "from-path"}


def test_ordered_pairs_and_router_paths() -> None:
    from celeriac.routing import lookup as _lookup

    pairs = ([("feed.tasks.*", {"queue": "feeds"}), ("feed.*", {"queue": "other"})],)
    assert _lookup(pairs, "feed.tasks.import") == {"queue": "feeds"}
    assert _lookup(pairs, "feed.x") == {"queue": "other"}
    assert _lookup(("tests.test_routing.route_by_path",), "any.task") == {"queue": "from-path"}
    assert _lookup({"a?c": "q"}, "abc") is None
