"""Running a notebook in a confined kernel (grader/kernel/execute.py): output capped in the kernel, a
kernel whose output channel dies is restarted, and the grader's calls do not wait for output."""
from __future__ import annotations

from typing import Any

import nbformat
import pytest
from builders import quick_context

from grader.kernel.execute import KernelSession

pytestmark = pytest.mark.slow  # every test here starts a kernel


def _session(**limits: Any) -> KernelSession:
    ctx = quick_context(**limits)
    return KernelSession(ctx.sandbox, ctx.rubric.limits)


def _notebook(*sources: str) -> Any:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def _text(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def test_a_print_flood_is_cut_in_the_kernel_and_later_output_still_arrives() -> None:
    nb = _notebook("while True:\n    print('x' * 10000)", "print('after the flood')")
    with _session(cell_timeout=3) as session:
        run = session.run_notebook(nb)
        assert [c.status for c in run.cells] == ["timeout", "ok"]
        assert session.restarts == 0  # the output channel survived: nothing to restart
        assert [f.code for f in run.flags] == ["cell.timeout"]
        limit = session.limits.max_output_chars
        assert len(_text(nb.cells[0])) <= limit + 300   # cut in the kernel, plus the grader's note
        assert _text(nb.cells[1]) == "after the flood\n"


def test_many_huge_displays_are_cut_in_the_kernel_before_they_are_sent() -> None:
    # 2 MB of metadata 600 times would be 1.2 GB through the grader's socket, each dropped there.
    flood = ("from IPython.display import display\n_meta = {'junk': 'x' * 2_000_000}\n"
             "for _ in range(600):\n    display({'text/plain': 'ok'}, raw=True, metadata=_meta)\n"
             "print('done')")
    nb = _notebook(flood, "print('next')")
    with _session() as session:
        run = session.run_notebook(nb)
        assert [c.status for c in run.cells] == ["ok", "ok"]
        assert session.restarts == 0
        assert _text(nb.cells[0]) == "done\n" and _text(nb.cells[1]) == "next\n"


def test_one_huge_print_is_cut_in_the_kernel_before_it_is_sent() -> None:
    # 10 MB in one message would pass the grader's message size limit and be dropped whole.
    nb = _notebook("print('x' * 10_000_000)", "print('next')")
    with _session() as session:
        run = session.run_notebook(nb)
        assert [c.status for c in run.cells] == ["ok", "ok"]
        assert session.restarts == 0
        assert 0 < len(_text(nb.cells[0])) <= session.limits.max_output_chars + 300
        assert _text(nb.cells[1]) == "next\n"


# A kernel that sends one message over the grader's size limit on its output channel, past the
# kernel-side cap: the grader's end drops that connection, and no later output arrives.
_KILL_OUTPUT = """
_k = get_ipython().kernel
_k.session.send(_k.iopub_socket, "stream", {"name": "stdout", "text": "x" * 6_000_000},
                parent=_k.get_parent())
defined_before = 1
"""


def test_a_kernel_whose_output_channel_dies_is_restarted_and_the_cell_skipped() -> None:
    nb = _notebook("a = 1", _KILL_OUTPUT, "b = a + 1\nprint(b)")
    # A cell time far above the wait for output: the cell is told apart from one that ran too long.
    with _session(cell_timeout=120) as session:
        run = session.run_notebook(nb)
        statuses = [c.status for c in run.cells]
        # ZeroMQ reconnects a dropped connection by itself; whether that happens before the
        # kernel reports the cell done is a race. Either way the grader must go on correctly:
        if statuses[1] == "died":  # the channel stayed dead: a restart, the cell skipped
            assert statuses == ["ok", "died", "ok"]
            assert session.restarts == 1
            assert [f.code for f in run.flags] == ["kernel.died"]
            assert "no longer sent its output" in run.flags[0].message
            assert run.flags[0].cell == 1
            # The skipped cell's names are not there; the grader's calls work on the new kernel.
            assert session.run_code("defined_before", 30).status == "error"
        elif statuses[1] == "timeout":  # on a loaded machine: no reply within the cell's time, then
            # the interrupt was answered on a working channel; flagged as a long cell, no restart
            assert statuses == ["ok", "timeout", "ok"]
            assert session.restarts == 0 and [(f.code, f.cell) for f in run.flags] == [("cell.timeout", 1)]
        else:  # it came back: the cell ran, only its oversized message was lost; nothing to flag
            assert statuses == ["ok", "ok", "ok"]
            assert session.restarts == 0 and run.flags == []
            assert session.run_code("defined_before", 30).status == "ok"
        assert _text(nb.cells[2]) == "2\n"  # cell 0's names survive, as they must
        assert session.run_code("b", 30).status == "ok"


def test_the_grader_calls_do_not_need_the_output_channel() -> None:
    with _session() as session:
        session.start(_notebook())
        assert session.run_code(_KILL_OUTPUT, 30).status == "ok"
        # The output channel is dead now; calls answer on the shell channel and go on working.
        for _ in range(3):
            assert session.run_code("defined_before + 1", 30).status == "ok"
        assert session.run_code("raise ValueError('bad value')", 30).error == "ValueError: bad value"
        assert session.restarts == 0


# A plot as a notebook shows it: a display with a PNG (here 90 KB of random bytes, base64) and
# its text/plain stand-in; a matplotlib figure's PNG is typically 40-100 KB.
_PLOT = ("import base64, os\nfrom IPython.display import display\n"
         "_png = base64.b64encode(b'\\x89PNG\\r\\n\\x1a\\n' + os.urandom(90_000)).decode()\n"
         "def plot():\n    display({'image/png': _png, 'text/plain': '<Figure size 640x480>'}, raw=True)\n")


def _pictures(cell: Any) -> int:
    return sum(1 for o in cell.outputs if "image/png" in o.get("data", {}))


def test_a_plot_is_kept_however_much_its_cell_printed() -> None:
    # Counted as text, the plot alone (120 KB of base64) would pass the cell's 20,000 characters.
    nb = _notebook(_PLOT, "print('x' * 50_000)\nplot()\nprint('after the plot')")
    with _session() as session:
        session.run_notebook(nb)
    assert _pictures(nb.cells[1]) == 1
    text = _text(nb.cells[1])
    assert "[output cut: this cell printed more than" in text  # the print, not the picture
    assert "pictures passed" not in text


def test_pictures_have_a_budget_of_their_own_per_cell() -> None:
    nb = _notebook(_PLOT, "for _ in range(30):\n    plot()\nprint('text still arrives')", "plot()")
    with _session() as session:
        run = session.run_notebook(nb)
        budget = session.limits.max_picture_kb * 1024
    assert [c.status for c in run.cells] == ["ok", "ok", "ok"]
    kept = _pictures(nb.cells[1])
    assert 1 <= kept < 30 and kept * 120_000 <= budget
    text = _text(nb.cells[1])
    assert f"[output cut: this cell's pictures passed {budget // 1024} KB together]" in text
    assert "text still arrives" in text
    assert _pictures(nb.cells[2]) == 1  # the next cell has its own budget


def test_a_matplotlib_figure_arrives_as_a_picture_with_nothing_on_stderr() -> None:
    # As in Jupyter: the inline backend sends the figure as a PNG; fontconfig finds its config
    # in the sandbox's /etc, so no "Fontconfig error" lands in the student's report.
    nb = _notebook("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('loss')\nplt.show()")
    with _session() as session:
        run = session.run_notebook(nb)
    assert [c.status for c in run.cells] == ["ok"]
    assert _pictures(nb.cells[0]) == 1
    assert _text(nb.cells[0]) == ""
