"""Drives examples/django_demo with Django's test client, in its own process (the pytest
process is configured with tests/django/settings.py; Django is configured once per process).
Prints one JSON document; run by tests/django/test_demo_project.py with the demo's settings."""

from __future__ import annotations

import json
import time
from typing import Any

import django

django.setup()

from celery_demo.celery import app  # noqa: E402
from django.test import Client  # noqa: E402

DONE = {"SUCCESS", "FAILURE"}


def wait(client: Client, task_id: str, timeout: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get("/celery_app/get_result/", {"task_id": task_id}).json()
        if body["status"] in DONE or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def main() -> None:
    client = Client()
    out: dict[str, Any] = {
        "timezone": str(app.conf.timezone),
        "beat_schedule": sorted(app.conf.beat_schedule),
        "broker_url": app.conf.broker_url,
        "missing_id": client.get("/celery_app/get_result/").status_code,
    }
    started = client.get("/celery_app/", {"x": 20, "y": 22}).json()
    out["index"] = wait(client, started["task_id"])
    primitives = client.get("/celery_app/primitive/").json()
    out["primitive"] = {
        name: [wait(client, one)["result"] for one in ids] if isinstance(ids, list)
        else wait(client, ids)["result"]
        for name, ids in primitives.items()
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
