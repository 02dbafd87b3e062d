"""The student's report and the batch summary on a phone (390x844) and on a desk (1300x900), in
Debian's Chromium through Playwright: layout metrics, not pixels.

Per page and size: no sideways scroll (the document's scrollWidth within the viewport); the check
tables are cards at 390 px (each row a block) and tables at 1300 px; the page at 390 px is at most
three times as tall as at 1300 px. The reports are the fixtures of tests/files/reports/ plus a
notebook with every function left a stub (every check raised NotImplementedError), the case
that made a 66,069 px page before. Screenshots go to tests/artifacts/ for a human to look at.
"""
from __future__ import annotations

import copy
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

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FIXTURES = Path(__file__).resolve().parent / "files" / "reports"
KINDS = ("good", "failing", "raised", "error", "hostile", "stubs")
PHONE = (390, 844)
DESK = (1300, 900)
MAX_RATIO = 3.0


def stubs_result() -> dict[str, Any]:
    """The good fixture as a notebook with every function left a stub would come back."""
    data = copy.deepcopy(json.loads((FIXTURES / "good.json").read_text(encoding="utf-8")))
    for q in data["questions"].values():
        for c in q.get("checks", []):
            fn = c.get("function") or "train_recall"
            c.update(passed=False, points=0.0, expected="", got="", series=None, diagnosis="", probes=[],
                     message=f"`{fn}` raised NotImplementedError: replace this line with your implementation")
        if q.get("checks"):
            q["points"] = 0.0
    data["points"] = sum(q["points"] for q in data["questions"].values())
    return data


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phone")
    folder = OutDir(out)
    results = []
    for kind in KINDS:
        data = stubs_result() if kind == "stubs" else json.loads((FIXTURES / f"{kind}.json").read_text(encoding="utf-8"))
        data["folder"] = kind
        results.append(SubmissionResult.from_json(data))
        folder.write_submission(results[-1], render_pages(results[-1]))
    # A pair of groups whose shared code holds a long line: the side-by-side view must fit a phone.
    long = "W_hh = torch.randn(hidden_size, hidden_size) * spectral_norm_scale_for_the_gradient_bound_experiment\n"
    side = {"a": 1.0, "b": 1.0, "score": 1.0, "passages_a": [[long * 3, True]], "passages_b": [[long * 3, True]]}
    similarity = {"threshold": 0.5, "method": "shared passages", "pairs_compared": 1,
                  "pairs": [{"a": "good", "b": "failing", "a_label": "Hopper_2581111_Liskov_2582222.ipynb",
                             "b_label": "Lovelace_2571234_Turing_2579876.zip", "score": 1.0,
                             "code": side, "text": side}]}
    folder.write_batch(results, load_rubric(), "", similarity=similarity)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def measure(browser: Any, path: Path, size: tuple[int, int], shot: str) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"phone.{shot}.{size[0]}.png"), full_page=True)
        return page.evaluate("""() => ({
            scrollWidth: document.documentElement.scrollWidth,
            clientWidth: document.documentElement.clientWidth,
            height: document.documentElement.scrollHeight,
            viewport: !!document.querySelector('meta[name=viewport]'),
            cardRows: [...document.querySelectorAll('table.cards tbody tr')]
                .filter(r => getComputedStyle(r).display === 'block').length,
            tableRows: [...document.querySelectorAll('table.cards tbody tr')]
                .filter(r => getComputedStyle(r).display === 'table-row').length,
            widest: Math.max(0, ...[...document.querySelectorAll('body *')]
                .map(e => e.getBoundingClientRect().right)),
        })""")
    finally:
        context.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_report_reads_on_a_phone_and_a_desk(browser: Any, site: Path, kind: str) -> None:
    phone = measure(browser, site / kind / "report.html", PHONE, kind)
    desk = measure(browser, site / kind / "report.html", DESK, kind)
    for name, m in (("390 px", phone), ("1300 px", desk)):
        assert m["viewport"], kind
        assert m["scrollWidth"] <= m["clientWidth"], f"{kind} at {name} scrolls sideways: {m}"
    assert phone["cardRows"] > 0 and phone["tableRows"] == 0, f"{kind}: tables are not cards at 390 px: {phone}"
    assert desk["cardRows"] == 0 and desk["tableRows"] > 0, f"{kind}: cards at 1300 px: {desk}"
    ratio = phone["height"] / desk["height"]
    print(f"{kind}: {phone['height']} px at 390, {desk['height']} px at 1300, ratio {ratio:.2f}")
    assert ratio <= MAX_RATIO, f"{kind}: {phone['height']} px at 390 vs {desk['height']} px at 1300"


def test_the_summary_reads_on_a_phone(browser: Any, site: Path) -> None:
    phone = measure(browser, site / "summary.html", PHONE, "summary")
    desk = measure(browser, site / "summary.html", DESK, "summary")
    assert phone["viewport"]
    assert phone["scrollWidth"] <= phone["clientWidth"], phone
    assert desk["scrollWidth"] <= desk["clientWidth"], desk
    assert phone["cardRows"] >= len(KINDS) and phone["tableRows"] == 0, phone


def test_the_stubs_report_says_each_repeated_message_once(site: Path) -> None:
    html = (site / "stubs" / "report.html").read_text(encoding="utf-8")
    data = stubs_result()
    checks = [c for q in data["questions"].values() for c in q.get("checks", [])]
    functions = {c.get("function") or "train_recall" for c in checks}
    shown = html.count("raised NotImplementedError")
    assert len(checks) >= 18 and shown == len(functions), (len(checks), shown, functions)
