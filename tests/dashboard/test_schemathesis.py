"""schemathesis generates requests from the OpenAPI document (/api/openapi.json) and checks
every response against it: documented status codes, content types, JSON shapes, no 5xx.

The app has no registered task (so /api/task/apply never waits on a worker) and a memory
history holding a few tasks. The event stream is left out: it never ends by design.
"""

from __future__ import annotations

import base64
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import negative_data_rejection

from celeriac import Celery
from celeriac.dashboard.app import DashboardConfig, create_app
from celeriac.dashboard.history import open_history
from tests.dashboard.api_support import StubCollector, task_events

_url = f"memory://schemathesis-{uuid.uuid4().hex[:8]}"
_history = open_history("memory://")
_collector = StubCollector(_history)
for _i in range(3):
    _collector.feed(*task_events(task_id=f"task-{_i}"))
_collector.feed(*task_events(task_id="failed-1", state="FAILURE"))
_collector.live = {"w1@host": {"hostname": "w1@host", "status": False, "active": 0}}
_asgi = create_app(
    Celery("schemathesis", broker=_url, backend=_url),
    DashboardConfig(basic_auth=[("api", "secret")], inspect_timeout_s=0.05),
    history=_history, collector=_collector,  # type: ignore[arg-type]
)
AUTH = {"Authorization": "Basic " + base64.b64encode(b"api:secret").decode()}

schema = schemathesis.openapi.from_asgi("/api/openapi.json", _asgi, headers=AUTH)


@pytest.mark.slow
@schema.exclude(path="/api/events/stream").parametrize()
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    if isinstance(case.query, dict) and "timeout" in case.query:
        # a wait of up to an hour for a result nobody will store (a list of values, in
        # negative cases, is read as its last one): keep the run short
        case.query["timeout"] = 0.1
    # Every check but "schema-violating request accepted": the API is as lenient as Flower
    # where Flower was (any real date in received_start, extra query parameters); invalid
    # requests are still generated, and must never get a 5xx or an undocumented answer.
    case.call_and_validate(headers=AUTH, excluded_checks=[negative_data_rejection])
