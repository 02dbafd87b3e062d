"""The documentation holds together: the site builds with `mkdocs build --strict` (a warning fails
it), every relative link of README.md and docs/ reaches a file (and a heading, where it names one),
and the built pages load nothing from another host."""
from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "benchmarks" / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE = re.compile(r"(`+)(?!`).+?(?<!`)\1", re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text with fenced blocks and code spans taken out: a link written as code is not a link."""
    return CODE.sub("", FENCE.sub("", text))


def _slugs(heading: str) -> set[str]:
    """The anchors a heading gets: Python-Markdown's (the site) and GitHub's (the repository)."""
    text = unicodedata.normalize("NFKD", heading.replace("`", "")).lower()
    words = re.sub(r"[^\w\- ]", "", text).strip()
    return {re.sub(r"[-\s]+", "-", words), words.replace(" ", "-")}


def _anchors(page: Path) -> set[str]:
    return {slug for h in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))) for slug in _slugs(h)}


def _links(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text(encoding="utf-8")))


def test_the_pages_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/index.md", "docs/contract.md", "docs/security.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # another site (https:, mailto:): not ours to check offline
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_checker_sees_a_broken_link(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\nSee [there](missing.md), [here](#title), `[code](nowhere.md)`.\n")
    assert _links(page) == ["missing.md", "#title"]
    assert "title" in _anchors(page) and not (tmp_path / "missing.md").exists()


def test_the_site_builds_strictly_and_loads_nothing_from_outside(tmp_path: Path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "WARNING" not in log, log
    pages = list(site.rglob("*.html"))
    assert {"index.html", "security.html", "contract.html"} <= {p.name for p in pages}
    outside = re.compile(r"<(?:script|link|img|iframe)\b[^>]*(?:src|href)=[\"'](?:https?:)?//", re.I)
    fetched = [p.name for p in pages if outside.search(p.read_text(encoding="utf-8"))]
    assert not fetched, f"pages that load from another host: {fetched}"
