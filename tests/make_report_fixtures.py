"""Write the result.json fixtures of the report, golden and browser tests (tests/files/reports/).

They start from real results: grade the example submissions and two fixture notebooks once,

    grade examples/submissions/* tests/files/hostile/Xss_2600021_Turing_2700021.ipynb \
          tests/files/mistakes/lstm_raises.ipynb -o /tmp/graded
    python tests/make_report_fixtures.py /tmp/graded

    python tests/make_report_fixtures.py --check   # exit 1 if a fixture is stale

then this script fixes what varies from run to run (seconds) and adds what a batch run does not
produce by itself: a tutor's score and comment (with math) on the good one, and on the hostile
one an attack in every field a report shows (each payload would set ``document.title`` to
``XSS`` or fetch from evil.example if it ever ran; the browser tests check that none does).

Grading them again takes kernels and an LSTM's training, so ``--check`` does not: a fixture is
stale when it is not in today's result format, i.e. when today's grader would not write it back
as it is (:meth:`SubmissionResult.from_json` then ``to_json`` changes it: a key the result no
longer has, or one it now writes that the fixture lacks).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "files" / "reports"
SOURCES = {
    "good": "Lovelace_2571234_Turing_2579876",
    "failing": "Hopper_2581111_Liskov_2582222",
    "raised": "lstm_raises",
    "error": "Broken_2600001_Notebook_2600002",
    "hostile": "Xss_2600021_Turing_2700021",
}
XSS = "<script>document.title='XSS'</script>"
ONERROR = "<img src=x onerror=\"document.title='XSS'\">"
TRACKER = "<img src=\"https://evil.example/pixel.png\">"
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _stable(data: dict[str, Any]) -> dict[str, Any]:
    data["seconds"] = 12.5
    for cell in data.get("cells", []):
        cell["seconds"] = 0.5
    recall = data.get("recall") or {}
    for key in ("lstm_seconds", "rnn_seconds"):
        if recall.get(key) is not None:
            recall[key] = 3.0
    return data


def _good(data: dict[str, Any]) -> dict[str, Any]:
    q = data["questions"]["11.3.3"]
    data["points"] = round(data["points"] + 0.5, 4)
    q.update(status="manual", points=0.5, scored_by="ada",
             comment="Right idea; the bias is missing: $p = \\tanh(W [c_1; c_2] + b)$ with "
                     "$W \\in \\mathbb{R}^{d \\times 2d}$.")
    return data


def _hostile(data: dict[str, Any]) -> dict[str, Any]:
    data["group"] = [{"name": f"Eve {XSS}", "student_id": "2600021", "email": f"e@x.example\">{ONERROR}"},
                     {"name": "Mallory <b onmouseover=alert(1)>M</b>", "student_id": "2700021",
                      "email": "m@x.example"}]
    data["other_files"] = [f"notes{XSS}.pdf"]
    data["flags"] = [{"code": "archive.contents", "question": None,
                      "message": f"the zip also held `{XSS}` and {ONERROR} [x](javascript:alert(1))"},
                     {"code": "words.over_limit", "question": "11.2.1", "message": f"130 words {TRACKER}"}]
    data["late"] = {"seconds": 3600, "days": 1, "deduction": 0.0, "message": f"1 hour late {XSS}"}
    data["tutor_detail"] = f"Traceback {XSS}"
    data["sandbox"] = f"NOT SANDBOXED {ONERROR}"
    checks = data["questions"]["11.4.a"]["checks"]
    lost = checks[0]["points"]  # the first check now fails: its question and the total lose its points
    data["questions"]["11.4.a"]["points"] = round(data["questions"]["11.4.a"]["points"] - lost, 4)
    data["points"] = round(data["points"] - lost, 4)
    checks[0].update(passed=False, points=0.0,
                     message=f"`{XSS}` came back {ONERROR} $\\href{{javascript:alert(1)}}{{x}}$",
                     expected=f"</code>{XSS}", got=f"[1.0]</code>{ONERROR}", shapes=f"x (3, 1, 2) {TRACKER}",
                     mistakes=[], max_abs=1.0, max_rel=1.0)
    data["code_cells"] = list(data.get("code_cells") or []) + [
        f"def rnn_forward(x, h0, W, U, b, activation='tanh'):\n    \"</code></pre>{XSS}\"\n    return x\n"]
    data["cells"] = list(data.get("cells") or []) + [
        {"index": 90, "status": "error", "seconds": 0.5, "error": f"ValueError: {XSS}",
         "outputs": [{"kind": "text", "text": f"{XSS}{ONERROR}"},
                     {"kind": "error", "text": f"ValueError: {XSS}"},
                     {"kind": "image", "src": "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"},
                     {"kind": "image", "src": "javascript:alert(1)"},
                     {"kind": "image", "src": "https://evil.example/plot.png"},
                     {"kind": "image", "src": f"data:image/png;base64,{PNG_1PX}"},
                     {"kind": "<script>", "text": XSS}]}]
    answers = data["questions"]
    answers["11.1.1"]["answer"]["markdown"] += (
        f"\n\n{TRACKER} <link rel=stylesheet href=https://evil.example/s.css> <base href=https://evil.example/>"
        f" <meta http-equiv=refresh content=\"0;url=https://evil.example\"> <form action=https://evil.example><button>go</button></form>"
        f" <span style=\"background:url(https://evil.example/bg.png)\">styled</span> <object data=https://evil.example/o></object>")
    answers["11.1.2"]["answer"]["markdown"] += (
        "\n\nMath attacks: $\\href{javascript:alert(1)}{click}$ and "
        "$\\style{background:url(https://evil.example/m.png)}{x}$ "
        "and <math><mrow href=\"javascript:alert(1)\" style=\"background:url(https://evil.example/m2.png)\">"
        "<mi xlink:href=\"javascript:alert(1)\">x</mi>"
        "<maction actiontype=\"statusline\"><mi>y</mi><mtext>z</mtext></maction>"
        f"</mrow><annotation-xml encoding=\"text/html\">{XSS}</annotation-xml></math>"
        "\n\n![a](attachment:evil.svg) ![b](attachment:missing.png) ![c](data:image/svg+xml;base64,PHN2Zz4=)")
    answers["11.1.2"]["answer"]["attachments"] = {"evil.svg": {"image/svg+xml": "<svg onload=alert(1)>"}}
    answers["11.2.1"].update(status="manual", points=0.25, scored_by="eve",
                             comment=f"[see](javascript:alert(1)) {TRACKER} {XSS} $\\frac{{1}}{{2}}$")
    data["points"] = round(data["points"] + 0.25, 4)
    answers["11.3.4b"]["answer"]["notes"] = [f"note {XSS}"]
    return data


def stale() -> list[str]:
    """The fixtures today's result format would write differently, each with the keys that differ."""
    from grader.result import SubmissionResult
    out = []
    for name in SOURCES:
        path = HERE / f"{name}.json"
        if not path.is_file():
            out.append(f"{path.name}: missing")
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        again = json.loads(json.dumps(SubmissionResult.from_json(data).to_json()))
        keys = _differ(data, again)
        if keys:
            out.append(f"{path.name}: {', '.join(keys)}")
    return out


def _differ(a: Any, b: Any, at: str = "") -> list[str]:
    """The dotted keys where two JSON values differ (the first level that differs)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in sorted(set(a) | set(b), key=str)
                for k in (_differ(a.get(key), b.get(key), f"{at}{key}.") if key in a and key in b
                          else [f"{at}{key}"])]
    return [] if a == b else [at.rstrip(".")]


def main(graded: Path) -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, folder in SOURCES.items():
        data = _stable(json.loads((graded / folder / "result.json").read_text(encoding="utf-8")))
        if name == "good":
            data = _good(data)
        if name == "hostile":
            data = _hostile(data)
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
        print(f"wrote {HERE / name}.json")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        found = stale()
        for line in found:
            print(f"stale: {line}; grade the sources again and run this script (see its docstring)")
        sys.exit(1 if found else 0)
    main(Path(sys.argv[1]))
