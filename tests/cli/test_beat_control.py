"""``celeriac beat --enable-remote-control`` (issue 14 item 1, Celery 5.7's meaning): beat
answers ``inspect ping`` under its node name so it can be health-checked, ignores every other
command, and stays silent once its loop has stopped ticking (a probe acts on no reply).

The listener runs on a real memory broker with real threads; the subprocess tests run beat on
a SQLite broker."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.cli.beat_control import BeatControl, beat_nodename, max_tick_age_s
from tests.cli.project import make_project
from tests.cli.workers import WorkerProcess, run_cli


class Clock:
    """The loop's last tick, as the beat service records it (monotonic seconds)."""

    def __init__(self) -> None:
        self.last: float | None = None

    def __call__(self) -> float | None:
        return self.last


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("beatctl", broker=f"memory://beatctl-{uuid.uuid4().hex}")
    yield app
    app.close()


@pytest.fixture
def beat(app: Celery) -> Iterator[tuple[BeatControl, Clock]]:
    clock = Clock()
    control = BeatControl(app.broker, "celerybeat@probe", max_tick_age_s=5.0, last_tick=clock)
    control.start()
    yield control, clock
    control.stop()


def test_a_ticking_beat_answers_ping(app: Celery, beat: tuple[BeatControl, Clock]) -> None:
    _, clock = beat
    clock.last = time.monotonic()
    assert app.control.inspect(timeout=1).ping() == {"celerybeat@probe": {"ok": "pong"}}
    assert app.control.inspect(["celerybeat@probe"], timeout=1).ping() == {
        "celerybeat@probe": {"ok": "pong"}}
    # before the loop's first pass there is nothing to judge: it answers
    clock.last = None
    assert app.control.inspect(timeout=1).ping() == {"celerybeat@probe": {"ok": "pong"}}


def test_a_stuck_beat_is_silent(app: Celery, beat: tuple[BeatControl, Clock],
                                caplog: pytest.LogCaptureFixture) -> None:
    _, clock = beat
    clock.last = time.monotonic() - 8  # the limit is 5 s
    assert app.control.inspect(timeout=0.5).ping() is None
    assert "not answering ping: the scheduler has not ticked for " in caplog.text
    assert "s (over the 5 s limit)" in caplog.text
    clock.last = time.monotonic()
    assert app.control.inspect(timeout=1).ping() == {"celerybeat@probe": {"ok": "pong"}}


def test_other_commands_and_other_nodes_get_no_reply(
        app: Celery, beat: tuple[BeatControl, Clock]) -> None:
    _, clock = beat
    clock.last = time.monotonic()
    assert app.control.inspect(timeout=0.5).active() is None
    assert app.control.inspect(["w1@probe"], timeout=0.5).ping() is None


def test_node_names_and_the_tick_age_limit() -> None:
    host = socket.gethostname()
    assert beat_nodename(None) == f"celerybeat@{host}"
    assert beat_nodename("box1") == "celerybeat@box1"
    assert beat_nodename("b1@%h") == f"b1@{host}"
    assert max_tick_age_s(None, 300) == 600
    assert max_tick_age_s(None, 5) == 60
    assert max_tick_age_s(0, 300) == 0


def test_beat_answers_ping_only_when_asked(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    host = socket.gethostname()
    with WorkerProcess(tmp_path, ["-A", name, "beat", "--enable-remote-control", "-n",
                                  "beat1@%h", "-s", str(tmp_path / "sched")]) as proc:
        proc.wait_for(f"remote ctl -> beat1@{host}")
        done = run_cli(["-A", name, "inspect", "ping", "-d", f"beat1@{host}"], tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[:2] == [f"->  beat1@{host}: OK", "        pong"]
        # worker-only commands: beat stays out of the answer (none here: exit 69)
        active = run_cli(["-A", name, "inspect", "active", "-t", "0.5"], tmp_path)
        assert active.returncode == 69 and "beat1" not in active.stdout + active.stderr
        assert proc.stop() == 0, proc.output()
        assert "Traceback" not in proc.output()
    with WorkerProcess(tmp_path, ["-A", name, "beat", "-n", "beat2@%h", "-s",
                                  str(tmp_path / "sched")]) as proc:
        proc.wait_for("maxinterval->")
        assert "remote ctl" not in proc.output()
        done = run_cli(["-A", name, "inspect", "ping", "-t", "0.5"], tmp_path)
        assert done.returncode == 69, done.stdout
        assert proc.stop() == 0, proc.output()


SETTINGS_APP = """
from celeriac import Celery

app = Celery("{name}", broker="sqlite:///{name}.db")
app.conf.beat_enable_remote_control = True
app.conf.beat_remote_control_max_tick_age = {age}
"""


@pytest.mark.parametrize("age", [0, 1])
def test_the_beat_settings_turn_it_on_and_bound_the_tick_age(tmp_path: Path, age: int) -> None:
    # age 0: always answers; age 1 s with a loop that sleeps 30 s: silent after a second
    name = f"bc_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(SETTINGS_APP.format(name=name, age=age))
    host = socket.gethostname()
    with WorkerProcess(tmp_path, ["-A", name, "beat", "--max-interval", "30", "-s",
                                  str(tmp_path / "sched")]) as proc:
        proc.wait_for(f"remote ctl -> celerybeat@{host}")
        time.sleep(1.5)
        done = run_cli(["-A", name, "inspect", "ping", "-t", "1"], tmp_path)
        if age:
            assert done.returncode == 69, done.stdout
            proc.wait_for("s (over the 1 s limit)")
            assert "beat: not answering ping: the scheduler has not ticked for " in proc.output()
        else:
            assert done.returncode == 0 and f"celerybeat@{host}: OK" in done.stdout, \
                done.stdout + done.stderr
        assert proc.stop() == 0, proc.output()
        assert "SettingNotImplementedWarning" not in proc.output()
