"""``grade serve`` in a real headless Chromium (Debian's /usr/bin/chromium through Playwright):
a tutor scores three answers with the keyboard only, reloads and sees them; the app's own script
runs under its Content-Security-Policy and a student's script never does."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import chromium_browser
from test_serve import ADA, GRACE, TOKEN, _key, _out

from grader.folder.gradebook import Gradebook
from grader.tutors.serve import HOST, create_app, free_port

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    import uvicorn
    out = _out(tmp_path)
    port = free_port(0)
    config = uvicorn.Config(create_app(out, "ada", TOKEN), host=HOST, port=port, log_level="warning",
                            access_log=False, lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://{HOST}:{port}", out
    finally:
        srv.should_exit = True
        thread.join(timeout=60)


@pytest.fixture()
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def test_a_tutor_scores_three_answers_with_the_keyboard_and_sees_them_after_a_reload(server: Any,
                                                                                     browser: Any) -> None:
    base, out = server
    page = browser.new_page()
    page.set_default_timeout(120_000)  # a loaded machine: generous, never a timing assertion
    dialogs: list[str] = []
    console: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))
    page.goto(f"{base}/?token={TOKEN}")
    assert page.url == f"{base}/"                       # the token left the address bar
    page.goto(f"{base}/q/11.2.1")
    assert page.url == f"{base}/q/11.2.1/1"

    order = [page.locator('input[name="key"]').input_value()]
    page.keyboard.press("2")                            # 0.5 points
    assert page.locator("#points").input_value() == "0.5"
    page.keyboard.press("Enter")                        # save, on to answer 2
    page.wait_for_url(f"{base}/q/11.2.1/2?saved=1")
    order.append(page.locator('input[name="key"]').input_value())
    page.keyboard.press("p")                            # back and forth with the keys
    page.wait_for_url(f"{base}/q/11.2.1/1")
    page.keyboard.press("n")
    page.wait_for_url(f"{base}/q/11.2.1/2")
    page.keyboard.press("3")                            # 0.75 points
    page.keyboard.press("c")                            # into the comment
    page.keyboard.type('Klar & gut, "ja" <b>')
    page.keyboard.press("Shift+Enter")                  # a new line, not a save
    page.keyboard.type("Zweite Zeile")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/q/11.2.2/1?after=11.2.1")  # the last answer: on to the next question

    page.goto(f"{base}/q/11.1.1/1")
    page.keyboard.press("1")                            # 0.25 points
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/q/11.1.1/2?saved=1")

    with Gradebook(out / "gradebook.sqlite") as book:
        stored = book.manual_scores()
    by_key = {_key(f): f for f in (ADA, GRACE)}  # the form names a group by its key, never its folder
    order = [by_key[k] for k in order]
    assert stored[order[0]]["11.2.1"]["points"] == 0.5 and stored[order[0]]["11.2.1"]["tutor"] == "ada"
    assert stored[order[1]]["11.2.1"]["points"] == 0.75
    assert stored[order[1]]["11.2.1"]["comment"] == 'Klar & gut, "ja" <b>\nZweite Zeile'
    assert stored[order[0]]["11.1.1"]["points"] == 0.25
    assert sorted(order) == sorted([ADA, GRACE])

    page.goto(f"{base}/q/11.2.1/2")                    # what was saved is what the tutor sees
    page.reload()
    assert page.locator("#points").input_value() == "0.75"
    assert page.locator("#comment").input_value() == 'Klar & gut, "ja" <b>\nZweite Zeile'
    assert "Stored: 0.75 by ada" in page.locator("#stored").inner_text()
    page.goto(f"{base}/q/11.2.1/1")
    assert page.locator("#points").input_value() == "0.5"
    page.goto(f"{base}/")
    assert page.locator('[id="progress-11.2.1"] .scored').inner_text() == "2"
    assert page.locator('[id="progress-11.2.1"] .to-score').inner_text() == "0"
    assert page.locator('[id="progress-11.1.1"] .to-score').inner_text() == "1"
    # the student's answer with <img onerror> and <script> ran nothing; the app's script did run
    page.goto(f"{base}/q/11.2.1/{order.index(ADA) + 1}")
    page.wait_for_timeout(300)
    assert dialogs == []
    assert not [m for m in console if "Content Security Policy" in m], console
    report = (out / order[1] / "report.html").read_text()
    assert "Klar &amp; gut" in report and "&lt;b&gt;" in report and "Zweite Zeile" in report
    assert "<b>" not in report.split("Klar &amp; gut")[1][:200]  # the tutor's comment: HTML shown as text


SIZES = [(390, 844), (1300, 900)]


@pytest.mark.parametrize("size", SIZES, ids=["390", "1300"])
def test_the_scoring_keys_at_a_phones_and_a_desks_width(server: Any, browser: Any, size: tuple[int, int]) -> None:
    """N moves to the next question; c puts the cursor after an existing comment; r then 1 inserts
    a kept comment; two quick Enters save once, without a conflict; the page does not scroll
    sideways and shows the question's prompt."""
    from test_serve import _out  # noqa: F401 - the same folder as the server's
    base, out = server
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{base}/?token={TOKEN}")
        page.goto(f"{base}/q/11.2.1/1")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"serve.answer.{size[0]}.png"), full_page=True)
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"the scoring page scrolls sideways at {size[0]} px: {widths}"
        assert page.locator("#prompt").is_visible() and "CNN and RNN" in page.locator("#prompt").inner_text()
        page.keyboard.press("Shift+N")                       # the next question
        page.wait_for_url(f"{base}/q/11.2.2/1")
        page.goto(f"{base}/q/11.2.1/1")
        page.keyboard.press("2")
        page.keyboard.press("c")
        page.keyboard.type("Good start.")
        page.locator("#keep").click()                        # kept for reuse on 11.2.1
        page.wait_for_selector("button.reuse")
        page.locator("#comment").fill("First line and more")
        page.locator("body").click(position={"x": 1, "y": 1})
        page.keyboard.press("r")
        page.keyboard.press("1")                             # the kept comment, at the end
        assert page.locator("#comment").input_value() == "First line and more\nGood start."
        page.locator("#comment").focus()
        page.keyboard.press("Enter")                         # two quick Enters: one save, no conflict
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/q/11.2.1/2?saved=1")
        assert page.locator("#error").count() == 0
        with Gradebook(out / "gradebook.sqlite") as book:
            history = [h for h in book.history() if h["question"] == "11.2.1"]
        assert len(history) == 1 and history[0]["new_comment"] == "First line and more\nGood start."
        page.goto(f"{base}/q/11.2.1/1")                     # the stored comment, as the page brings it
        page.keyboard.press("c")                             # the cursor at its end: new text is appended
        page.keyboard.type(" Cite it.")
        assert page.locator("#comment").input_value() == "First line and more\nGood start. Cite it."
        for path in ("/", page.locator("a", has_text="automatic points").get_attribute("href")):
            page.goto(f"{base}{path}")                       # the start page and the overrides page fit too
            widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert widths[0] <= widths[1], f"{path} scrolls sideways at {size[0]} px: {widths}"
        rows = page.evaluate("[...document.querySelectorAll('table.auto tbody tr')].map(r => getComputedStyle(r).display)")
        assert rows and set(rows) == {"block" if size[0] < 640 else "table-row"}, rows  # cards on a phone
    finally:
        context.close()
