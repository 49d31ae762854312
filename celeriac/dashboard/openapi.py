"""``GET {prefix}/api/openapi.json``: an OpenAPI 3.0 document describing every endpoint of
:mod:`celeriac.dashboard.api` (paths, parameters, bodies, every status code each can answer,
the JSON shapes). tests/dashboard/test_schemathesis.py runs schemathesis against it, and a test
checks that every route in ``api.ENDPOINTS`` is described and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

import celeriac
from celeriac.control import TERMINATE_SIGNALS
from celeriac.dashboard.api import JSON
from celeriac.dashboard.task_query import SORT_FIELDS

if TYPE_CHECKING:
    from celeriac.dashboard.app import Dashboard

__all__ = ["document", "routes"]

#: Flower's '%Y-%m-%d %H:%M:%S.%f' (days to 28 so that every generated example is a real date)
DATE_PATTERN = (r"^20[2-9][0-9]-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]) "
                r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{1,6}$")
_NULLABLE_STR = {"type": "string", "nullable": True}
_NULLABLE_NUM = {"type": "number", "nullable": True}
SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": {"type": "string"}}},
    "Message": {"type": "object", "required": ["message"],
                "properties": {"message": {"type": "string"}}},
    "Task": {
        "type": "object",
        "description": "Flower's task shape; times are epoch seconds or null.",
        "properties": {
            "uuid": {"type": "string"}, "name": _NULLABLE_STR, "state": _NULLABLE_STR,
            "received": _NULLABLE_NUM, "sent": _NULLABLE_NUM, "started": _NULLABLE_NUM,
            "succeeded": _NULLABLE_NUM, "failed": _NULLABLE_NUM, "retried": _NULLABLE_NUM,
            "revoked": _NULLABLE_NUM, "rejected": _NULLABLE_NUM, "args": _NULLABLE_STR,
            "kwargs": _NULLABLE_STR, "result": {"nullable": True},
            "exception": _NULLABLE_STR, "traceback": _NULLABLE_STR,
            "worker": _NULLABLE_STR, "runtime": _NULLABLE_NUM, "timestamp": _NULLABLE_NUM,
            "root_id": _NULLABLE_STR, "parent_id": _NULLABLE_STR,
            "children": {"type": "array", "items": {"type": "string"}, "nullable": True},
        },
    },
    "TaskCall": {
        "type": "object", "required": ["task-id"],
        "properties": {"task-id": {"type": "string"}, "state": {"type": "string"},
                       "result": {"nullable": True}, "traceback": _NULLABLE_STR},
    },
    "TaskOptions": {
        "type": "object", "additionalProperties": False,
        "description": "args, kwargs and apply_async options (eta/expires as "
                       "'%Y-%m-%d %H:%M:%S.%f'); any other key is a 400.",
        "properties": {
            "args": {"type": "array"}, "kwargs": {"type": "object"},
            "countdown": {"type": "number", "minimum": 0, "maximum": 1e9},
            "eta": {"type": "string", "pattern": DATE_PATTERN},
            "expires": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1e9},
                                  {"type": "string", "pattern": DATE_PATTERN}]},
            "queue": {"type": "string", "minLength": 1, "maxLength": 200},
            "priority": {"type": "integer", "minimum": 0, "maximum": 255},
            "task_id": {"type": "string", "minLength": 1, "maxLength": 200},
        },
    },
    "Queue": {
        "type": "object", "required": ["name", "messages"],
        "properties": {"name": {"type": "string"}, "messages": {"type": "integer"},
                       "oldest_age_s": _NULLABLE_NUM},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _q(name: str, schema: dict[str, Any], description: str, required: bool = False
       ) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[^/]+$"}, "description": description}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {400: "bad parameters", 401: "authentication required",
               403: "refused (read-only, CSRF) or the worker answered an error",
               404: "unknown worker or task", 413: "request body too large",
               503: "no result backend"}
    return {str(code): _json(_ref("Error"), reasons[code]) for code in codes}


_WORKER = _path("name", "the worker's hostname, e.g. celery@host")
_TASK_ID = _path("task_id", "the task id")
_TASK_NAME = _path("name", "the task name, e.g. proj.tasks.add")
_BOOL = {"type": "string", "enum": ["1", "true", "True", "yes", "on",
                                    "0", "false", "False", "no", "off"]}
_WAIT = {"type": "number", "minimum": 0, "maximum": 3600}
_CONTROL_ERRORS = _errors(400, 401, 403, 404, 413)
#: epoch seconds, or Flower's '%Y-%m-%d %H:%M' (any real date is accepted; the pattern keeps
#: generated examples real)
_WHEN = {"anyOf": [
    {"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,6})?$"},
    {"type": "string",
     "pattern": r"^(19[7-9][0-9]|20[0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]) "
                r"([01][0-9]|2[0-3]):[0-5][0-9]$"},
]}
_SORT = {"type": "string",
         "enum": sorted(SORT_FIELDS) + sorted(f"-{field}" for field in SORT_FIELDS)}
_TASK_FILTERS = [
    _q("workername", {"type": "string"}, "only this worker's tasks ('All': no filter)"),
    _q("taskname", {"type": "string"}, "only tasks of this name"),
    _q("state", {"type": "string"}, "only tasks in this state"),
    _q("received_start", _WHEN, "received after: epoch seconds or '%Y-%m-%d %H:%M'"),
    _q("received_end", _WHEN, "received before (same formats)"),
    _q("search", {"type": "string"}, "text searched in name, args, kwargs, result"),
]


def _op(summary: str, responses: dict[str, Any], parameters: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, tag: str = "tasks") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses,
                          "parameters": parameters or []}
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {
            "schema": body}}}
    return op


def _control(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"post": _op(summary, {"200": _json(_ref("Message")), **_CONTROL_ERRORS},
                        [_WORKER, *params], tag="workers")}


def _task_post(summary: str, codes: tuple[int, ...], params: list[dict[str, Any]] | None = None,
               ref: str = "TaskCall") -> dict[str, Any]:
    body = _ref("TaskOptions") if ref == "TaskCall" else None
    return {"post": _op(summary, {"200": _json(_ref(ref)), **_errors(*codes)}, params, body)}


def paths() -> dict[str, Any]:
    n = _q("n", {"type": "integer", "minimum": 1}, "how many processes (default 1)")
    queue = _q("queue", {"type": "string", "minLength": 1}, "the queue's name", required=True)
    worker_opt = _q("workername", {"type": "string"}, "only this worker (default: all)")
    return {
        "/api/workers": {"get": _op(
            "List workers: inspect replies (stats, active_queues, registered, scheduled, "
            "active, reserved, revoked, conf) per worker; status=1: {name: online}",
            {"200": _json({"type": "object", "additionalProperties": {}}),
             **_errors(400, 401, 404)},
            [_q("refresh", _BOOL, "ask the workers now"),
             _q("workername", {"type": "string"}, "only this worker"),
             _q("status", _BOOL, "only online status (bool per worker)")], tag="workers")},
        "/api/worker/shutdown/{name}": _control("Shut a worker down (warm)", []),
        "/api/worker/pool/restart/{name}": _control("Restart a worker's pool", []),
        "/api/worker/pool/grow/{name}": _control("Grow a worker's pool", [n]),
        "/api/worker/pool/shrink/{name}": _control("Shrink a worker's pool", [n]),
        "/api/worker/pool/autoscale/{name}": _control("Set autoscale bounds", [
            _q("min", {"type": "integer", "minimum": 0}, "minimum processes", True),
            _q("max", {"type": "integer", "minimum": 1}, "maximum processes", True)]),
        "/api/worker/queue/add-consumer/{name}": _control("Consume from a queue", [queue]),
        "/api/worker/queue/cancel-consumer/{name}": _control("Stop consuming a queue", [queue]),
        "/api/tasks": {"get": _op(
            "List tasks from the history, {id: task}, in sort order; X-Total-Count header: "
            "how many match",
            {"200": _json({"type": "object", "additionalProperties": _ref("Task")}),
             **_errors(400, 401)},
            [_q("limit", {"type": "integer", "minimum": 0}, "at most this many"),
             _q("offset", {"type": "integer"}, "skip this many"),
             _q("sort_by", _SORT, "a field, '-field' for descending"),
             *_TASK_FILTERS])},
        "/api/task/types": {"get": _op(
            "Task names seen", {"200": _json({"type": "object", "required": ["task-types"],
                                              "properties": {"task-types": {
                                                  "type": "array",
                                                  "items": {"type": "string"}}}}),
                                **_errors(401)})},
        "/api/task/info/{task_id}": {"get": _op(
            "One task from the history", {"200": _json(_ref("Task")), **_errors(401, 404)},
            [_TASK_ID])},
        "/api/task/result/{task_id}": {"get": _op(
            "A task's state and result from the result backend",
            {"200": _json(_ref("TaskCall")), **_errors(400, 401, 503)},
            [_TASK_ID, _q("timeout", _WAIT, "seconds to wait for it")])},
        "/api/task/async-apply/{name}": _task_post(
            "Send a registered task", (400, 401, 403, 404, 413), [_TASK_NAME]),
        "/api/task/apply/{name}": _task_post(
            "Send a registered task and wait for its result", (400, 401, 403, 404, 413, 503),
            [_TASK_NAME, _q("timeout", _WAIT, "seconds to wait at most (default: until it ends)")]),
        "/api/task/send-task/{name}": _task_post(
            "Send a task by name (need not be registered here)", (400, 401, 403, 413),
            [_TASK_NAME]),
        "/api/task/revoke/{task_id}": _task_post(
            "Revoke a task", (400, 401, 403, 413),
            [_TASK_ID, _q("terminate", _BOOL, "stop it if it runs"),
             _q("signal", {"type": "string", "enum": [
                 *TERMINATE_SIGNALS, *(name[3:] for name in TERMINATE_SIGNALS)]},
                "signal for terminate (default SIGTERM)")],
            ref="Message"),
        "/api/task/abort/{task_id}": _task_post(
            "Mark an unfinished task ABORTED in the result backend", (401, 403, 503),
            [_TASK_ID], ref="Message"),
        "/api/task/rate-limit/{name}": _task_post(
            "Change a task's rate limit on the workers", (400, 401, 403, 404, 413),
            [_TASK_NAME, _q("ratelimit", {"type": "string", "pattern": r"^[0-9]{1,9}(/[smh])?$"},
                "e.g. 10/s, 100/m, 0", True),
             worker_opt], ref="Message"),
        "/api/task/timeout/{name}": _task_post(
            "Change a task's time limits on the workers", (400, 401, 403, 404, 413),
            [_TASK_NAME, _q("soft", {"type": "number"}, "soft limit, seconds"),
             _q("hard", {"type": "number"}, "hard limit, seconds"), worker_opt],
            ref="Message"),
        "/api/queues/length": {"get": _op(
            "Messages waiting (and the oldest one's age) per queue",
            {"200": _json({"type": "object", "required": ["active_queues"],
                           "properties": {"active_queues": {"type": "array",
                                                            "items": _ref("Queue")}}}),
             **_errors(401)}, tag="queues")},
        "/api/events/stream": {"get": _op(
            "Server-Sent Events: one Celery event dict per data: line",
            {"200": _text("the stream", "text/event-stream"), **_errors(401)},
            [_q("types", {"type": "string"}, "comma-separated event types; '*' ends a prefix")],
            tag="events")},
        "/api/dashboard/workers": {"get": _op(
            "Live worker state from events (hostname -> status, active, processed, loadavg, "
            "freq, sw_*, timestamp, pid)",
            {"200": _json({"type": "object", "additionalProperties": {"type": "object"}}),
             **_errors(401)}, tag="workers")},
        "/api/dashboard/series": {"get": _op(
            "Per-bucket task counts and mean runtime for charts",
            {"200": _json({"type": "object", "required": ["bucket_s", "since", "series"],
                           "properties": {"bucket_s": {"type": "number"},
                                          "since": {"type": "number"},
                                          "series": {"type": "array",
                                                     "items": {"type": "object"}}}}),
             **_errors(400, 401)},
            [_q("bucket_s", {"type": "number", "minimum": 0.01, "maximum": 86400},
                "bucket width, seconds (default 60; widened to keep at most 10000 buckets)"),
             _q("window_s", {"type": "number", "minimum": 1, "maximum": 31 * 86400},
                "how far back, seconds (default 3600)")],
            tag="events")},
        "/healthcheck": {"get": {"summary": "Liveness (no authentication)", "tags": ["system"],
                                 "security": [], "responses": {"200": _text("OK")}}},
        "/metrics": {"get": _op("Prometheus metrics", {"200": _text("exposition text"),
                                                       **_errors(401)}, tag="system")},
        "/api/openapi.json": {"get": _op(
            "This document", {"200": _json({"type": "object"}), **_errors(401)},
            tag="system")},
    }


def document(url_prefix: str = "") -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "celeriac dashboard API (Flower-compatible)",
                 "version": celeriac.__version__},
        "servers": [{"url": url_prefix or "/"}],
        "paths": paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        },
        "security": [{"basicAuth": []}],
    }


def routes(dashboard: Dashboard) -> list[BaseRoute]:
    body = document(dashboard.config.url_prefix)

    async def openapi_json(request: Request) -> Response:
        return JSON(body)

    return [Route("/api/openapi.json", openapi_json, methods=["GET"])]
