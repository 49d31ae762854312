"""beat as real processes: ``celeriac beat``, ``celeriac worker -B``, three beats at once."""

from __future__ import annotations

import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from celeriac.beat import run_id
from celeriac.brokers import create_broker
from celeriac.cli.main import main
from tests.cli.workers import WorkerProcess

PROJECT = """
    from celeriac import Celery

    app = Celery("proj", broker="sqlite:///broker.db")
    app.conf.beat_schedule = {
        "tick": {"task": "proj.mark", "schedule": 1.0, "args": ("tick",)},
    }


    @app.task
    def mark(tag):
        with open("marks.txt", "a") as handle:
            handle.write(tag + "\\n")
"""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: how long the three beats run side by side (the test takes about 60 s in all)
THREE_BEATS_RUN_S = 58.0


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "proj.py").write_text(textwrap.dedent(PROJECT))
    return tmp_path


def queued_ids(project: Path) -> list[str]:
    broker = create_broker(f"sqlite:///{project / 'broker.db'}", {})
    try:
        deliveries = broker.consume(["celery"], 100_000, 0.0)
        broker.ack(deliveries)
        return [d.task_id for d in deliveries]
    finally:
        broker.close()


def beat_process(project: Path, *args: str) -> WorkerProcess:
    return WorkerProcess(project, ["-A", "proj", "beat", "-l", "info", *args])


def test_beat_command_sends_runs_and_keeps_its_state(project: Path) -> None:
    with beat_process(project, "--max-interval", "1") as beat:
        beat.wait_for("beat: Starting")
        time.sleep(3.0)
        assert beat.stop() == 0, beat.output()
    output = beat.output()
    assert "celeriac beat is starting." in output
    assert f"sqlite file {project / 'celerybeat-schedule.db'}" in output
    sent = output.count("Scheduler: Sending due task tick (proj.mark)")
    assert sent >= 2, output
    first_ids = queued_ids(project)
    assert len(first_ids) == len(set(first_ids)) == sent
    assert (project / "celerybeat-schedule.db").exists()

    # Restarted: it resumes from the file and sends none of those runs again.
    with beat_process(project) as again:
        again.wait_for("beat: Starting")
        again.wait_for("Sending due task tick", timeout_s=10)
        assert again.stop() == 0, again.output()
    second_ids = queued_ids(project)
    assert second_ids and not set(second_ids) & set(first_ids)


def test_worker_with_embedded_beat_runs_the_entry(project: Path) -> None:
    with WorkerProcess(project, ["-A", "proj", "worker", "-B", "-P", "solo", "-l", "info"]) as w:
        w.wait_for("ready.")
        time.sleep(4.0)
        assert w.stop() == 0, w.output()
    marks = (project / "marks.txt").read_text().splitlines()
    assert len(marks) >= 2, w.output()
    assert set(marks) == {"tick"}
    assert "Sending due task tick (proj.mark)" in w.output()
    assert "beat: stopped" in w.output()


@pytest.mark.slow
def test_three_beats_send_each_run_exactly_once(project: Path) -> None:
    beats = [beat_process(project, "-s", f"beat-{n}") for n in range(3)]
    try:
        for beat in beats:
            beat.wait_for("beat: Starting", timeout_s=30)
        started = time.time()
        time.sleep(THREE_BEATS_RUN_S)
        stopped = time.time()
        for beat in beats:
            assert beat.stop() == 0, beat.output()
    finally:
        for beat in beats:
            beat.kill()
    ids = queued_ids(project)
    assert len(ids) == len(set(ids)), "a run was sent twice"
    run_of = {
        run_id("tick", EPOCH + timedelta(seconds=second)): second
        for second in range(int(started) - 5, int(stopped) + 5)
    }
    assert set(ids) <= set(run_of), "a message that is no run of the entry"
    seconds = sorted(run_of[i] for i in ids)
    assert len(seconds) >= THREE_BEATS_RUN_S - 3
    # Every beat took part, and their "sent" lines add up to the messages: none sent twice.
    sent_lines = [beat.output().count("Sending due task tick") for beat in beats]
    assert sum(sent_lines) == len(ids), sent_lines
    assert all(beat.output().count("beat: Starting") == 1 for beat in beats)


# -- in-process command line -----------------------------------------------------------------------


def test_beat_help() -> None:
    outcome = CliRunner().invoke(main, ["beat", "--help"])
    assert outcome.exit_code == 0
    for option in ("-s, --schedule", "-S, --scheduler", "--max-interval", "-l, --loglevel",
                   "--pidfile", "-f, --logfile"):
        assert option in outcome.output
    assert "\n  beat " in CliRunner().invoke(main, ["--help"]).output


def test_beat_detach_needs_a_named_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``beat --detach`` works (tests/cli/test_multi.py); an app handed to ``app.start()``
    cannot be re-run in a new process, so that is one line and nothing starts."""
    from celeriac import Celery
    from celeriac.cli.main import run_app_main

    monkeypatch.chdir(tmp_path)
    app = Celery("detach_test", broker="memory://")
    assert run_app_main(app, ["beat", "--detach"]) == 2
    assert "--detach needs the app named on the command line" in capsys.readouterr().err
    assert not (tmp_path / "celerybeat.pid").exists()


def test_beat_reports_a_bad_scheduler(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    try:
        outcome = CliRunner().invoke(main, ["-A", "proj", "beat", "-S", "no.such:Scheduler"])
    finally:
        sys.modules.pop("proj", None)
    assert outcome.exit_code != 0
    assert "Cannot load the beat scheduler 'no.such:Scheduler'" in outcome.output
