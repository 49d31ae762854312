"""The dashboard in a real browser (headless Chromium through Playwright) against the real
command, a SQLite broker and worker processes sending events: a worker comes online, a task
moves to SUCCESS without a reload, the task list filters, a task is revoked from its page,
``<script>`` in arguments never runs, and every page is photographed.

Each live check also proves the page was not reloaded: a mark set on ``window`` after the
first load is still there when the change shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.browser.support import CHROMIUM, Stack, require_browser, screenshot, stack

pytestmark = pytest.mark.slow

WAIT_MS = 30_000
DASH = "\u2013"  # the en dash of the pager: "1 DASH 20 of 22"


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_browser()
    with stack(tmp_path_factory.mktemp("dash")) as found:
        yield found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, dash: Stack) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    tab.on("console", lambda msg: errors.append(msg.text)
           if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    tab.on("response", lambda r: errors.append(f"{r.status} {r.url}")
           if r.status >= 400 and not (r.status == 404 and "/api/task/info/" in r.url) else None)
    yield tab
    context.close()
    # no script error, no alert, no CSP violation (Chromium logs those as console errors), no
    # failed request (but a 404 for a task no worker reported yet, which the page waits out)
    assert errors == []


def _open(page: Any, dash: Stack, path: str) -> None:
    page.goto(dash.url + path)
    page.evaluate("window.__sameDocument = true")


def _same_document(page: Any) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def test_a_worker_comes_online_live(page: Any, dash: Stack, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    _open(page, dash, "/workers")
    expect(page.locator("#live")).to_have_text("live")
    dash.start_worker("w1@dash")
    row = page.locator('tr[data-worker="w1@dash"]')
    expect(row.locator(".status")).to_have_text("Online")
    expect(page.locator("#empty")).to_be_hidden()
    expect(row).to_contain_text("max 2")  # the pool size, from inspect
    assert _same_document(page)
    screenshot(page, "workers", tmp_path)


def test_a_task_moves_to_success_live(page: Any, dash: Stack) -> None:
    from playwright.sync_api import expect

    dash.ensure_worker()
    _open(page, dash, "/tasks")
    result = dash.module.slow.delay(3.0)
    row = page.locator(f'tr[data-task="{result.id}"]')
    expect(row.locator(".state")).to_have_text("STARTED")
    expect(row.locator(".state")).to_have_text("SUCCESS")
    assert _same_document(page)

    # the task's own page follows it too: opened before its worker has seen it
    other = dash.module.slow.apply_async((1.0,), countdown=1)
    _open(page, dash, f"/task/{other.id}")
    expect(page.locator("#task-state .state")).to_have_text("SUCCESS")
    expect(page.locator("#result")).to_have_text("1.0")
    expect(page.locator("#timeline li")).to_have_count(4)  # sent, received, started, succeeded
    assert _same_document(page)


def test_the_task_list_filters_sorts_and_pages(page: Any, dash: Stack, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    dash.ensure_worker()
    marker = "needle-7f3a"
    adds = [dash.module.add.delay(i, 1) for i in range(18)]
    booms = [dash.module.boom.delay(f"{marker} {i}") for i in range(3)]
    flaky = dash.module.flaky.delay()
    for result in [*adds, *booms, flaky]:
        result.get(timeout=30, propagate=False)

    _open(page, dash, "/tasks")
    page.select_option('select[name="state"]', "FAILURE")
    rows = page.locator("#tasks tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.locator(".state")).to_have_text(["FAILURE"] * 3)
    assert "state=FAILURE" in page.url  # the filter is in the address: links keep it

    page.select_option('select[name="state"]', "")
    page.fill('input[name="search"]', f"args:{marker}")
    page.press('input[name="search"]', "Enter")
    expect(rows).to_have_count(3)
    page.fill('input[name="search"]', "")
    page.select_option('select[name="taskname"]', "dashtasks.add")
    expect(rows).to_have_count(18)
    expect(page.locator("#range")).to_have_text(f"1{DASH}18 of 18")

    page.click('th button[data-sort="received"]')
    expect(page.locator('th[aria-sort="descending"]')).to_have_count(1)
    page.click('th button[data-sort="received"]')
    expect(page.locator('th[aria-sort="ascending"]')).to_have_count(1)
    expect(rows.first.locator("td").nth(3)).to_have_text("[0, 1]")

    page.select_option('select[name="limit"]', "20")
    page.select_option('select[name="taskname"]', "")
    expect(page.locator("#range")).not_to_have_text(f"1{DASH}18 of 18")
    expect(rows).to_have_count(20)
    total = int(page.locator("#range").inner_text().split(" of ")[1])
    assert total >= 22
    screenshot(page, "tasks", tmp_path)
    page.click("#next")
    expect(page.locator("#range")).to_have_text(f"21{DASH}{min(total, 40)} of {total}")
    expect(page.locator("#prev")).to_be_enabled()
    assert "offset=20" in page.url

    # a reload keeps the filters the address holds
    _open(page, dash, "/tasks?state=FAILURE&search=needle")
    expect(page.locator('select[name="state"]')).to_have_value("FAILURE")
    expect(rows).to_have_count(3)

    _open(page, dash, f"/task/{booms[0].id}")
    expect(page.locator("#exception")).to_contain_text("ValueError")
    expect(page.locator("#traceback")).to_contain_text("Traceback")
    _open(page, dash, f"/task/{flaky.id}")
    expect(page.locator("#task-state .state")).to_have_text("SUCCESS")
    expect(page.locator("#timeline")).to_contain_text("retried")
    screenshot(page, "task", tmp_path)


def test_revoke_a_running_task_from_its_page(page: Any, dash: Stack) -> None:
    from playwright.sync_api import expect

    dash.ensure_worker()
    result = dash.module.slow.delay(60)
    _open(page, dash, f"/task/{result.id}")
    expect(page.locator("#task-state .state")).to_have_text("STARTED")
    page.check('input[name="terminate"]')
    page.click("#revoke")
    expect(page.locator("#notice")).to_contain_text(f"Revoked '{result.id}'")
    expect(page.locator("#task-state .state")).to_have_text("REVOKED")
    expect(page.locator("#revoke")).to_be_disabled()
    assert _same_document(page)
    assert result.get(timeout=30, propagate=False) is not None
    assert result.state == "REVOKED"


def test_script_in_arguments_never_runs(page: Any, dash: Stack) -> None:
    from playwright.sync_api import expect

    dash.ensure_worker()
    hostile = ['<script>window.__pwned = 1</script>', '<img src=x onerror="window.__pwned=2">',
               '"><svg onload="window.__pwned=3">']
    result = dash.module.echo.delay(*hostile, note="<b onmouseover=alert(4)>bold</b>")
    result.get(timeout=30)

    _open(page, dash, f"/task/{result.id}")
    expect(page.locator("#task-state .state")).to_have_text("SUCCESS")
    for text in hostile:
        expect(page.locator("#args")).to_contain_text(text)  # shown as text, verbatim
        expect(page.locator("#result")).to_contain_text(text)
    expect(page.locator("#kwargs")).to_contain_text("<b onmouseover=alert(4)>bold</b>")
    assert page.locator("main img, main svg:not(.timeline-svg), main b, main script").count() == 0

    _open(page, dash, f"/tasks?search={result.id}")
    expect(page.locator("#tasks tbody tr")).to_have_count(1)
    page.hover("#tasks tbody tr td:nth-child(4)")
    assert page.locator("#tasks img, #tasks script, #tasks b").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_queues_and_charts(page: Any, dash: Stack, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    dash.ensure_worker()
    for _ in range(3):
        dash.module.parked.delay()
    _open(page, dash, "/queues")
    parked = page.locator('tr[data-queue="parked"]')
    expect(parked.locator("td").nth(1)).to_have_text("3")
    expect(parked.locator("td").nth(2)).not_to_have_text("—")
    expect(page.locator('tr[data-queue="celery"]')).to_have_count(1)
    expect(parked.locator("td").nth(3)).not_to_have_text("…", timeout=10_000)  # a rate
    screenshot(page, "queues", tmp_path)

    _open(page, dash, "/charts")
    for chart in ("throughput", "runtime", "failures"):
        expect(page.locator(f"#{chart} svg")).to_have_count(1)
    for i in range(5):
        dash.module.add.delay(i, i)
    expect(page.locator("#throughput polyline, #throughput circle.dot")).not_to_have_count(0)
    labels = page.locator("#throughput text.axis-label")
    before = labels.all_text_contents()
    page.select_option('select[name="window"]', "600:10")  # ten minutes: other time labels
    expect(labels).not_to_have_text(before)
    assert _same_document(page)
    screenshot(page, "charts", tmp_path)

    _open(page, dash, "/worker/w1@dash")
    expect(page.locator("#state .status")).to_have_text("Online")
    expect(page.locator("#registered")).to_contain_text("dashtasks.add")
    screenshot(page, "worker", tmp_path)
    page.click('#pool-form button[value="grow"]')  # a POST with the page's CSRF token
    expect(page.locator("#notice")).to_have_text("Growing 'w1@dash' worker's pool by 1")
