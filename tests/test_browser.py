"""Every kind of page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright, from the result.json fixtures of tests/files/reports/ (no kernel needed).

Per page: no console error, no request beyond the page itself (inline data: images aside), no
dialog and no script run by the hostile fixture, every formula drawn with a non-zero size, no table
wider than the window at 1300 px, and none wider than an A4 page when printed. Screenshots (and
a PDF of the good report) go to tests/artifacts/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import chromium_browser

from grader.folder.outdir import OutDir
from grader.pages.report import render_pages
from grader.result import SubmissionResult
from grader.rubric import load_rubric
from grader.tutors.review import write_review

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FIXTURES = Path(__file__).resolve().parent / "files" / "reports"
KINDS = ("good", "failing", "raised", "error", "hostile")
WIDTH = 1300
A4_CSS_PX = 794  # 210 mm at 96 dpi; @page margins leave less, which the page's own width shows
TIMEOUT_MS = 120_000  # a loaded 2-core machine: generous, and no assertion on time


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output folder as a batch and `grade review` leave it, built from the fixtures."""
    out = tmp_path_factory.mktemp("site")
    folder = OutDir(out)
    results = []
    for kind in KINDS:
        data = json.loads((FIXTURES / f"{kind}.json").read_text(encoding="utf-8"))
        data["folder"] = kind
        results.append(SubmissionResult.from_json(data))
        folder.write_submission(results[-1], render_pages(results[-1]))
    folder.write_batch(results, load_rubric(), "")
    write_review(out)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser(TIMEOUT_MS)


class Visit:
    """One page opened with every listener a test needs."""

    def __init__(self, browser: Any, path: Path, width: int = WIDTH, print_media: bool = False) -> None:
        self.url = path.resolve().as_uri()
        self.context = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.console: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)
        if print_media:
            self.page.emulate_media(media="print")
        self.page.goto(self.url, wait_until="load")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def eval(self, script: str) -> Any:
        return self.page.evaluate(script)

    def close(self) -> None:
        self.context.close()


def _check_page(v: Visit, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    v.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    errors = [c for c in v.console if c.startswith("error")]
    assert not errors and not v.errors, f"{name}: console errors {errors + v.errors}"
    foreign = [u for u in v.requests if u != v.url and not u.startswith("data:")]
    assert not foreign, f"{name}: requests beyond the page: {foreign}"
    assert not v.dialogs, f"{name}: dialogs {v.dialogs}"
    assert v.eval("document.title") != "XSS", f"{name}: a script ran"
    live = v.eval("""() => ({
        scripts: document.querySelectorAll('script').length,
        handlers: [...document.querySelectorAll('*')]
            .filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
        jsLinks: [...document.querySelectorAll('[href],[src],[action]')]
            .map(e => e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action') || '')
            .filter(u => /^\\s*(javascript|vbscript|https?):/i.test(u)).length
    })""")
    assert live == {"scripts": 0, "handlers": 0, "jsLinks": 0}, f"{name}: {live}"
    widths = v.eval("""() => {
        const limit = document.documentElement.clientWidth;
        return [...document.querySelectorAll('table')].map(t => t.getBoundingClientRect())
            .filter(r => r.right > limit + 0.5 || r.width > limit + 0.5).map(r => [r.left, r.right, limit]);
    }""")
    assert not widths, f"{name}: tables wider than the window: {widths}"
    math = v.eval("""() => [...document.querySelectorAll('math')].filter(m => !m.closest('details:not([open])'))
        .map(m => { const r = m.getBoundingClientRect(); return [r.width, r.height]; })""")
    assert all(w > 0 and h > 0 for w, h in math), f"{name}: a formula drawn with no size: {math}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("page", ["report.html", "tutor.html"])
def test_reports_in_chromium(browser: Any, site: Path, kind: str, page: str) -> None:
    v = Visit(browser, site / kind / page)
    try:
        _check_page(v, f"{kind}.{page}")
        if kind == "good":
            assert v.eval("document.querySelectorAll('math').length") > 10  # the answers' formulas
            assert v.eval("document.querySelectorAll('.hl').length") >= 4  # code beside each question
        if kind == "hostile":
            # The collapsed outputs open without fetching or running anything.
            v.page.click("details.outputs summary")
            assert v.eval("document.querySelector('details.outputs').open") is True
            _check_page(v, f"{kind}.{page}.outputs-open")
    finally:
        v.close()


@pytest.mark.parametrize("kind", ["good", "hostile", "error"])
def test_reports_print_on_a4_without_cut_tables(browser: Any, site: Path, kind: str) -> None:
    v = Visit(browser, site / kind / "report.html", width=A4_CSS_PX - 90, print_media=True)
    try:
        _check_page(v, f"{kind}.print")
        if kind == "good":
            v.page.pdf(path=str(ARTIFACTS / f"{kind}.report.pdf"), format="A4")
            assert (ARTIFACTS / f"{kind}.report.pdf").stat().st_size > 10_000
    finally:
        v.close()


def test_summary_fits_1300_px(browser: Any, site: Path) -> None:
    v = Visit(browser, site / "summary.html")
    try:
        _check_page(v, "summary")
        scroll = v.eval("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert scroll[0] <= scroll[1], f"the summary scrolls sideways: {scroll}"
        points = v.eval("""() => [...document.querySelectorAll('table.submissions th')]
            .find(t => t.textContent === 'Points').getBoundingClientRect().right""")
        assert points <= WIDTH
    finally:
        v.close()


@pytest.mark.parametrize("page", ["index.html", "11.1.2.html", "11.2.1.html", "11.3.3.html", "11.3.4a.html"])
def test_review_pages_in_chromium(browser: Any, site: Path, page: str) -> None:
    v = Visit(browser, site / "review" / page)
    try:
        _check_page(v, f"review.{page}")
        if page == "index.html":
            rows = v.eval("[...document.querySelectorAll('tbody tr')].length")
            assert rows == 9
        elif page != "11.1.2.html":  # 11.1.2: the hostile fixture's math attacks; its model answer has no formula
            assert v.eval("document.querySelectorAll('.model math').length") > 0  # the model answer's math
    finally:
        v.close()


def test_the_checks_catch_a_leaky_page(browser: Any) -> None:
    """The checks above can fail: a page with a script, a handler, a request and a wide table."""
    v = Visit(browser, Path(__file__).resolve().parent / "files" / "browser" / "leaky.html")
    try:
        with pytest.raises(AssertionError) as caught:
            _check_page(v, "leaky")
        assert v.eval("document.title") == "XSS" and any("127.0.0.1" in u for u in v.requests)
        assert caught.value is not None
    finally:
        v.close()
