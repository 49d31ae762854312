"""A prefork worker on PostgreSQL: the session its main process opened before forking is
closed before the pool starts, so no child shares it; each child opens its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac import Celery
from tests.django.conftest import REPO, subprocess_env
from tests.django.test_fixup import start, stop, wait_for


@pytest.mark.django_db(databases=["postgres"], transaction=True)
def test_prefork_children_never_share_the_parents_session(tmp_path: Path) -> None:
    broker = f"sqlite:///{tmp_path / 'broker.sqlite3'}"
    log = tmp_path / "worker.log"
    worker = start(
        ["celeriac", "-A", "tests.django.pg_project", "-b", broker, "worker", "-l", "info",
         "-P", "prefork", "-c", "2", "--max-tasks-per-child", "1"],
        subprocess_env(), log, cwd=REPO,
    )
    client = Celery("client", broker=broker, set_as_current=False)
    try:
        wait_for(log, "ready.", worker)
        results = [client.send_task("pg.pids") for _ in range(4)]
        sessions = [tuple(r.get(timeout=60)) for r in results]
    finally:
        stop(worker)
        client.close()
    import_pid = sessions[0][1]
    task_pids = {pid for pid, _ in sessions}
    assert import_pid not in task_pids  # a child never used the parent's session
    assert len(task_pids) == 4  # a fresh child, a fresh session, each time
