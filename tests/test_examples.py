"""The demo batch in examples/submissions/ is what examples/make_examples.py makes from today's
reference solution and student template: a stale example (made from an older template) makes the
demo's summary mark the template's own code as copied."""
from __future__ import annotations

from pathlib import Path

from builders import load_script

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "submissions"


def _generate(into: Path) -> None:
    load_script("make_examples", ROOT / "examples" / "make_examples.py").main(into)


def test_the_examples_are_made_from_todays_template_and_solution(tmp_path: Path) -> None:
    _generate(tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in EXAMPLES.iterdir())
    stale = [name for name in made if (tmp_path / name).read_bytes() != (EXAMPLES / name).read_bytes()]
    assert not stale, (f"examples made from an older template or solution: {stale}; "
                       "run `python examples/make_examples.py` and commit the files")


def test_the_generator_is_deterministic(tmp_path: Path) -> None:
    _generate(tmp_path / "a")
    _generate(tmp_path / "b")
    for p in (tmp_path / "a").iterdir():
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes(), p.name
