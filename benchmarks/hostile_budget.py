"""The grader's own time and peak memory on the worst hostile fixture of each kind.

    python benchmarks/hostile_budget.py            # every kind, one fresh process each
    python benchmarks/hostile_budget.py death_loop # some kinds only

Each submission is graded in a fresh Python process (``grade_submission`` and the report, as a
batch worker does), so ``ru_maxrss`` is the peak resident memory of that grading process alone:
the kernel is a child process and is not counted. Kernel limits are the hostile tests' short ones
(cell_timeout 5 s, notebook_timeout 60 s); every other limit is the rubric's. Prints a Markdown
table (the one in docs/security.md, "The grader's own work on hostile input").
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# kind -> (fixture key, what bounds it)
KINDS: dict[str, tuple[str, str]] = {
    "baseline": ("", "the fast solution, nothing hostile"),
    "deep JSON": ("deep_nesting", "flat depth scan, depth <= 64"),
    "cell count": ("cell_flood", "max_cells"),
    "name parts": ("many_name_parts", "name/group-cell caps, linear matcher"),
    "long answers": ("long_answer", "20,000 chars read, 1,000-char pysbd chunks, bounded regexes"),
    "attachments": ("attachment_flood", "images only, max_attachments_mb, inlined once"),
    "output metadata": ("metadata_flood", "per-cell cap counts metadata"),
    "outputs of many cells": ("output_flood", "max_outputs_mb per notebook"),
    "kernel death loop": ("death_loop", "max_restarts, submission_timeout, deadline on re-runs"),
    "planted socket links": ("socket_links", "pinned O_PATH sockets, sealed folder"),
    "subnormal chart": ("tiny_norms", "log axis on exponents, MAX_POINTS"),
}

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {tests!r})
from builders import quick_context
from grader.grade import grade_submission
from grader.pages.report import render_report
ctx = quick_context(cell_timeout=5, notebook_timeout=60)
t0 = time.monotonic()
result = grade_submission(__import__("pathlib").Path({path!r}), ctx)
html = render_report(result)
seconds = time.monotonic() - t0
print(json.dumps({{"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "status": result.status, "report_kb": len(html) / 1024,
                  "flags": sorted({{f.code for f in result.flags}})}}))
"""


def fixture_path(key: str, tmp: Path) -> Path:
    from make_hostile_fixtures import fixture
    if key:
        return fixture(key)
    from builders import solution, write_notebook
    return write_notebook(solution(fast=True), tmp / "Lovelace_2571234_Turing_2579876.ipynb")


def measure(path: Path) -> dict:
    code = CHILD.format(tests=str(ROOT / "tests"), path=str(path))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if run.returncode != 0:
        return {"error": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"}
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    wanted = [k for k in KINDS if not argv or KINDS[k][0] in argv or k in argv]
    print("| kind | fixture | grader time | grader peak RSS | report | status, flags | bounded by |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        for kind in wanted:
            key, bound = KINDS[kind]
            m = measure(fixture_path(key, Path(tmp)))
            if "error" in m:
                print(f"| {kind} | `{key or 'solution'}` | error: {m['error'][:80]} | | | | {bound} |", flush=True)
                continue
            print(f"| {kind} | `{key or 'solution'}` | {m['seconds']:.1f} s | {m['rss_mb']:.0f} MB | "
                  f"{m['report_kb']:.0f} KB | {m['status']}: {', '.join(m['flags']) or '-'} | {bound} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
