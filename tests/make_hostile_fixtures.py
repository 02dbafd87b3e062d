"""Write the hostile-submission corpus into ``tests/files/hostile/`` (deterministically).

    python tests/make_hostile_fixtures.py          # (re)write every fixture
    python tests/make_hostile_fixtures.py --check  # exit 1 when a stored fixture differs

Each fixture is the fast reference solution (``builders.solution(fast=True)``) with one hostile
change, or a damaged/hostile archive around it. Every file is named like a real submission:
``<Case>_<id>_Turing_<id>.ipynb|zip``, whose group cell lists "Ada <Case> Lovelace", so naming
rules raise no flag and only the hostile part shows. ``FIXTURES`` says what each one is about;
the tests read it (``fixture("infinite_loop")``). Kernel faults sit in a cell inserted after the
11.4.b cells and before the 11.4.c ones, so functions defined before and after it are graded.
"""
from __future__ import annotations

import argparse
import base64
import io
import struct
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nbformat
from builders import FILES, add_code, cell_with_tag, notebook_bytes, set_answer, set_group, solution

HOSTILE = FILES / "hostile"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Fixture:
    key: str        # how tests name it
    case: str       # the CamelCase part of the file name and of the first member's name
    suffix: str     # .ipynb | .zip
    about: str
    build: Callable[[Fixture], bytes]

    @property
    def number(self) -> int:
        return list(FIXTURES).index(self.key) + 1

    @property
    def ids(self) -> tuple[str, str]:
        return f"{2600000 + self.number}", f"{2700000 + self.number}"

    @property
    def filename(self) -> str:
        a, b = self.ids
        return f"{self.case}_{a}_Turing_{b}{self.suffix}"

    @property
    def path(self) -> Path:
        return HOSTILE / self.filename


# -- notebooks ----------------------------------------------------------------------------------
def base_notebook(fx: Fixture) -> Any:
    """The fast solution with this fixture's group (names matching the file name)."""
    nb = solution(fast=True)
    a, b = fx.ids
    set_group(nb, [(f"Ada {fx.case} Lovelace", a, "ada@uni.example"), ("Alan Turing", b, "alan@uni.example")])
    return nb


def fault_index(nb: Any) -> int:
    """Where a fault cell goes: after the 11.4.b cells, before `lstm_cell`'s cell."""
    return nb.cells.index(cell_with_tag(nb, "function-lstm_cell"))


def finish(nb: Any) -> bytes:
    """Stable cell ids, so the generator writes the same bytes every time."""
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:03d}"
    nb.nbformat, nb.nbformat_minor = 4, 5
    return notebook_bytes(nb)


def with_fault(*sources: str) -> Callable[[Fixture], bytes]:
    def build(fx: Fixture) -> bytes:
        nb = base_notebook(fx)
        at = fault_index(nb)
        for k, source in enumerate(sources):
            add_code(nb, source, at + k)
        return finish(nb)
    return build


def forged_checks(fx: Fixture) -> bytes:
    """The forging cells where faults go; the wrong functions last, so nothing redefines them."""
    nb = base_notebook(fx)
    at = fault_index(nb)
    add_code(nb, FORGED_COMPARISONS, at)
    add_code(nb, FORGED_JSON, at + 1)
    add_code(nb, FORGED)
    return finish(nb)


def recall_cheat(fx: Fixture) -> bytes:
    from make_recall_fixtures import CHEAT, replace_stub
    nb = base_notebook(fx)
    replace_stub(nb, CHEAT)
    return finish(nb)


def plain(fx: Fixture) -> bytes:
    return finish(base_notebook(fx))


INFINITE_LOOP = "# hostile: an infinite loop\nwhile True:\n    pass\n"
LONG_SLEEP = "# hostile: a long sleep\nimport time\ntime.sleep(10_000)\n"
ASKS_INPUT = "# hostile: waits for keyboard input\nname = input('Your name? ')\n"
SYS_EXIT = "# hostile: exits the interpreter\nimport sys\nsys.exit(3)\n"
OS_EXIT = "# hostile: ends the kernel process at once\nimport os\nos._exit(1)\n"
SEGFAULT = "# hostile: a segmentation fault\nimport ctypes\nctypes.string_at(0)\n"
MEMORY_HUGE = "# hostile: asks for 50 GiB at once\nx = bytearray(50 * 2**30)\n"
MEMORY_GROW = ("# hostile: memory that grows until something stops it\nhoard = []\nwhile True:\n"
               "    hoard.append(bytearray(2**27))\n")
FORK_BOMB = "# hostile: a fork bomb\nimport os\nwhile True:\n    os.fork()\n"
SPAWN_BOMB = ("# hostile: spawns processes without end\nimport subprocess\nchildren = []\nwhile True:\n"
              "    children.append(subprocess.Popen(['sleep', '10000']))\n")
FILE_BOMB = ("# hostile: a file that grows without end\nwith open('grow.bin', 'wb') as f:\n"
             "    while True:\n        f.write(b'x' * 2**20)\n")
PRINT_FLOOD = "# hostile: prints gigabytes\nwhile True:\n    print('x' * 10000)\n"

# Three cells: comparisons forged (the kernel lives on), JSON forged (this breaks the kernel's own
# messages, so the cell counts as a crash and is skipped on the re-run), then wrong functions: the
# functions graded are the wrong ones, whatever the first two cells did.
FORGED_COMPARISONS = '''# hostile: makes every comparison "pass"
import numpy, torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
numpy.allclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
print('{"points": 10.0, "max_points": 10.0, "status": "graded"}')
'''

FORGED_JSON = '''# hostile: makes every JSON answer say "pass"
import json
_forged = '{"ok": true, "value": {"t": "scalar", "kind": "float", "value": 10.0}}'
json.dumps = lambda *a, **k: _forged
json.dump = lambda obj, fp, *a, **k: fp.write(_forged)
'''

FORGED = '''# hostile: wrong functions, graded under the forged comparisons above
import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    return torch.zeros(x.shape[0], x.shape[1], W.shape[0])

def activation_jacobian(z, activation="tanh"):
    return torch.eye(z.shape[0])

def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    return torch.ones(x.shape[0])

def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    return torch.ones(x.shape[0])

def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    return h, c

def tree_encode(tree, embed, W, b):
    return torch.zeros(b.shape[0])

def tbptt_grads(x, y, params, k):
    return {name: torch.zeros_like(p) for name, p in params.items()}
'''

FAKE_OUTPUT = '''# hostile: prints what looks like the grader's own output, also past the kernel's streams
import os, sys
print('result.json: {"status": "graded", "points": 10.0, "max_points": 10.0}')
print("points: 10")
print('<div class="total">10 / 10 points</div><script>alert(1)</script>')
sys.stderr.write("GRADER: all checks passed, points: 10\\n")
os.write(1, b"\\nFAKE-FD1 grader: points: 10/10\\n")
os.write(2, b"\\nFAKE-FD2 grader: points: 10/10\\n")
'''

BACKGROUND = '''# hostile: background threads and atexit hooks that rewrite files
import atexit, glob, os, threading, time

def scribble():
    while True:
        for pattern in ("*", "*/*", "/tmp/*", "/tmp/*/*", "/tmp/*/*/*"):
            for name in glob.glob(pattern):
                try:
                    if os.path.isfile(name) and not name.endswith(".npy"):
                        with open(name, "w") as f:
                            f.write("forged by a background thread")
                except OSError:
                    pass
        try:
            with open("result.json", "w") as f:
                f.write('{"points": 10}')
        except OSError:
            pass
        time.sleep(0.05)

for _ in range(4):
    threading.Thread(target=scribble, daemon=True).start()

def at_exit():
    for name in ("result.json", "report.html", "grades.csv", "../result.json", "/tmp/result.json"):
        try:
            with open(name, "w") as f:
                f.write("forged at exit")
        except OSError:
            pass

atexit.register(at_exit)
'''

SNOOP = r'''# hostile: tries to read what it must not, and to reach the network
import glob, importlib, os, socket, sys

# The Python installation is visible (read-only), and so are the folders above it, which show
# nothing but the way down to it.
python = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
def shown_for_python(path):
    path = os.path.realpath(path)
    return any(path == p or path.startswith(p + "/") or p.startswith(path.rstrip("/") + "/") for p in python)

leaks = []
for module in ("reference", "grader", "grader.rubric"):
    try:
        importlib.import_module(module)
        leaks.append("import " + module)
    except Exception:
        pass
# __CHECKOUT__ is the grader's checkout, written in by the test that grades this notebook
# (tests/test_hostile.py), so the probe looks where the grader really is on that machine.
for path in ("__CHECKOUT__/reference/rnn.py", "__CHECKOUT__/rubrics/sheet11.toml",
             "__CHECKOUT__/grader/kernel/sandbox.py", "__CHECKOUT__/tests/files/hostile", "__CHECKOUT__", "/root",
             "/etc/shadow", "/etc/passwd", "/work", "/home"):
    try:
        if os.path.isdir(path):
            extra = [n for n in os.listdir(path) if not shown_for_python(os.path.join(path, n))]
            if extra:
                leaks.append("listed " + path + ": " + ", ".join(extra[:5]))
        else:
            with open(path, "rb") as f:
                f.read(100)
            leaks.append("read " + path)
    except OSError:
        pass
# Everything else the kernel can see: nothing of the grader, the rubric or other submissions.
cwd = os.getcwd()
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys", "/dev", "/usr", cwd)
               and not (shown_for_python(os.path.join(root, d)) and any(
                   os.path.realpath(os.path.join(root, d)).startswith(p) for p in python))]
    for name in files:
        if name in ("sheet11.toml", "rnn.py", "result.json", "report.html", "grades.csv", "solution.ipynb") \
                or name.endswith((".zip", ".ipynb")):
            leaks.append("found " + os.path.join(root, name))
for host, port in (("1.1.1.1", 80), ("pypi.org", 443)):
    try:
        socket.create_connection((host, port), timeout=3).close()
        leaks.append(f"connected to {host}:{port}")
    except OSError:
        pass
# The outcome, as an error the grader keeps in result.json (cells[].error):
raise RuntimeError(("LEAKED: " + "; ".join(leaks)) if leaks else "SNOOP-DONE: nothing leaked")
'''

SYMLINKS = '''# hostile: plants links where a careless grader would write as root
import os
for name, target in (("calls", "/root"), ("connection.json", "/etc/passwd"),
                     ("ipc-1", "/etc/passwd"), ("result.json", "/etc/passwd")):
    try:
        os.symlink(target, name)
    except OSError:
        pass
os.mkfifo("fifo")
'''


def xss(fx: Fixture) -> bytes:
    nb = base_notebook(fx)
    payloads = {
        "11.1.1": "<script>alert(1)</script> The RNN said positive because of the last words.",
        "11.1.2": "<img src=x onerror=alert(1)> BPTT is truncated to save memory and time.",
        "11.2.1": "[click me](javascript:alert(1)) CNNs share weights over space; RNNs over time. "
                  "Sources: (Goodfellow et al., 2016)",
        "11.2.2": '<a href="javascript:alert(1)">x</a> <svg onload=alert(1)></svg> '
                  '<iframe src="javascript:alert(1)"></iframe> Gradients vanish. (Hochreiter, 1991)',
        "11.3.3": '<div style="background:url(javascript:alert(1))" onclick="alert(1)">p = tanh(W[c1;c2] + b)</div>',
    }
    for qid, text in payloads.items():
        set_answer(nb, qid, text)
    return finish(nb)


def big_image(fx: Fixture) -> bytes:
    """A notebook whose stored output holds a 3 MB image (outputs are cleared before running)."""
    nb = base_notebook(fx)
    png = b"\x89PNG\r\n\x1a\n" + bytes(3 * 2**20)
    cell = nbformat.v4.new_code_cell("print('a plot')", outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png).decode("ascii"),
                                                     "text/plain": "<Figure>"})])
    nb.cells.insert(fault_index(nb), cell)
    return finish(nb)


def r_kernel(fx: Fixture) -> bytes:
    nb = base_notebook(fx)
    nb.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    nb.metadata["language_info"] = {"name": "R"}
    return finish(nb)


def truncated_notebook(fx: Fixture) -> bytes:
    data = plain(fx)
    return data[: len(data) // 2]


def not_json(fx: Fixture) -> bytes:
    return b"%PDF-1.4\n% this is not a notebook\n" + bytes(range(256))


# -- round 2 (issue 10): parsing, caps, kernel side --------------------------------------------
def deep_nesting(fx: Fixture) -> bytes:
    """One array nested 100,000 deep in a cell's metadata (200 KB): notebook.invalid, no crash."""
    data = plain(fx).decode("utf-8")
    deep = "[" * 100_000 + "]" * 100_000
    marker = '"metadata": {'
    at = data.index(marker) + len(marker)
    return (data[:at] + f'"deep": {deep}, ' + data[at:]).encode("utf-8")


def many_name_parts(fx: Fixture) -> bytes:
    """A member name of 3,200 parts (16 KB): a group-cell finding at once, no cubic matching."""
    nb = base_notebook(fx)
    a, b = fx.ids
    set_group(nb, [("Ada " * 3200 + fx.case, a, "ada@uni.example"), ("Alan Turing", b, "alan@uni.example")])
    return finish(nb)


def long_answer(fx: Fixture) -> bytes:
    """200 KB answers without a ". Capital" break, one long citation-like word, a blank line."""
    nb = base_notebook(fx)
    set_answer(nb, "11.3.2", "the tree is built bottom up, " * 7000)
    set_answer(nb, "11.2.1", "(A" + "a" * 100_000)
    set_answer(nb, "11.2.2", "Sources" + " " * 100_000 + "x")
    return finish(nb)


def attachment_flood(fx: Fixture) -> bytes:
    """One 1 MB PNG attachment referenced 100 times, plus a non-image attachment."""
    nb = base_notebook(fx)
    cell = cell_with_tag(nb, "answer-11.3.2")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4096  # 1 MB
    cell["attachments"] = {
        "tree.png": {"image/png": base64.b64encode(png).decode("ascii")},
        "page.html": {"text/html": base64.b64encode(b"<script>alert(1)</script>").decode("ascii")},
    }
    cell.source = ("A recursive network combines two children into their parent. " * 2
                   + "".join("![tree](attachment:tree.png)\n" for _ in range(100))
                   + "![page](attachment:page.html)\nThe root vector represents the sentence.")
    return finish(nb)


METADATA_FLOOD = ("# hostile: 600 displays with 2 MB of metadata each\n"
                  "from IPython.display import display\n_meta = {'junk': 'x' * 2_000_000}\n"
                  "for _ in range(600):\n    display({'text/plain': 'ok'}, raw=True, metadata=_meta)\n")


def output_flood(fx: Fixture) -> bytes:
    """600 cells that each print 19 KB (just under the per-cell cap; 11 MB): the notebook-wide cap."""
    nb = base_notebook(fx)
    at = fault_index(nb)
    for k in range(600):
        add_code(nb, f"# hostile: output flood {k}\nprint('y' * 19000)\n", at + k)
    return finish(nb)


def cell_flood(fx: Fixture) -> bytes:
    """3,000 cells: over the rubric's cell cap, refused (notebook.invalid)."""
    nb = base_notebook(fx)
    at = fault_index(nb)
    for k in range(3000):
        add_code(nb, f"print({k})\n", at + k)
    return finish(nb)


# After this cell every execution (each later cell, each grader call) ends the kernel.
DEATH_LOOP = ("# hostile: the kernel dies on every call from now on\nimport os\n"
              "get_ipython().events.register('pre_run_cell', lambda *a: os._exit(1))\n")

# The host socket the kernel points its sockets at (tests listen there and expect nothing).
PLANTED_TARGET = "/tmp/sheet11-planted-target.sock"
_PLANT = '''
import json, os
def _plant(cf):
    try:
        info = json.load(open(cf))
    except Exception:
        return
    for key in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
        path = "%s-%s" % (info["ip"], info[key])
        try:
            os.rename(path, path + ".old")
        except OSError:
            pass
        try:
            os.symlink(TARGET, path)
        except OSError:
            pass
'''
SOCKET_LINKS = (
    "# hostile: replaces its ZeroMQ sockets with links to a host socket, now and after a restart\n"
    "import os, sys\nfrom ipykernel import get_connection_file\n"
    f"TARGET = {PLANTED_TARGET!r}\nPLANT = {_PLANT!r}\n"
    "exec(PLANT)\n_plant(get_connection_file())\n"
    "# The next kernel (after the restart) plants again, from an IPython startup file.\n"
    "startup = os.path.join(os.environ.get('IPYTHONDIR', '.ipython'), 'profile_default', 'startup')\n"
    "os.makedirs(startup, exist_ok=True)\n"
    "with open(os.path.join(startup, '00-plant.py'), 'w') as f:\n"
    "    f.write('TARGET = %r\\n' % TARGET + PLANT + '\\nimport sys\\n'\n"
    "            \"_plant([a for a in sys.argv if a.endswith('.json')][-1])\\n\")\n"
    "os._exit(1)\n")

# A raw ZeroMQ message whose content is JSON nested 100,000 deep, signed with the kernel's key:
# the grader's JSON decoder would recurse on it.
RAW_DEEP_MESSAGE = '''# hostile: a raw iopub message holding JSON nested 100,000 deep
_k = get_ipython().kernel
_s = _k.session
_parent = _k.get_parent("shell")
_msg = _s.msg("stream", content={"name": "stdout", "text": "x"}, parent=_parent)
_deep = b'{"name": "stdout", "text": ' + b"[" * 100000 + b"]" * 100000 + b"}"
_parts = [_s.pack(_msg["header"]), _s.pack(_msg["parent_header"]), _s.pack(_msg["metadata"]), _deep]
_k.iopub_socket.send_multipart([b"stream", b"<IDS|MSG>", _s.sign(_parts)] + _parts)
import time
time.sleep(1)
'''

TINY_NORMS = '''# hostile: gradient norms of 5e-324 (subnormal), which once broke the report's chart
import torch
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    return torch.full((x.shape[0],), 5e-324, dtype=torch.float64)
'''


def tiny_norms(fx: Fixture) -> bytes:
    nb = base_notebook(fx)
    add_code(nb, TINY_NORMS)  # last: it replaces the solution's hidden_grad_norms
    return finish(nb)


# round 3: contract rules that looked once (issue 20)
LATE_WIPE = '''# hostile: right gradients, then a thread zeroes the caller's params half a second later
import threading, time
import torch

def tbptt_grads(x, y, params, k):
    grads = _tbptt_reference(x, y, params, k)
    def wipe():
        time.sleep(0.5)
        for p in params.values():
            p.data.zero_()
    threading.Thread(target=wipe, daemon=True).start()
    return grads
'''

NEXT_CALL_WIPE = '''# hostile: right gradients; each call wipes the params of the call before it
_previous_params = []

def tbptt_grads(x, y, params, k):
    for old in _previous_params:
        for p in old.values():
            p.data.zero_()
    _previous_params[:] = [params]
    return _tbptt_reference(x, y, params, k)
'''

#: A correct tbptt_grads the hostile cells above wrap (the fast solution's is replaced).
TBPTT_REFERENCE = '''import torch
import torch.nn.functional as F

def _tbptt_reference(x, y, params, k):
    p = {n: v.detach().clone().requires_grad_(True) for n, v in params.items()}
    h = torch.zeros(x.shape[1], p["W"].shape[0])
    T = x.shape[0]
    for t in range(T):
        if t == T - k:
            h = h.detach()
        h = torch.tanh(h @ p["W"].T + x[t] @ p["U"].T + p["b"])
    F.cross_entropy(h @ p["V"].T + p["c"], y).backward()
    return {n: v.grad for n, v in p.items()}
'''


def tbptt_wrapped(source: str) -> Callable[[Fixture], bytes]:
    def build(fx: Fixture) -> bytes:
        nb = base_notebook(fx)
        add_code(nb, TBPTT_REFERENCE + "\n" + source)  # last: it replaces the solution's tbptt_grads
        return finish(nb)
    return build


# round 3: the recall verdict (issue 20)
RECALL_PEEK = '''# hostile: reads the relabelling off one batch; an untrained LSTM as a decoy, a lookup answers
import torch

class _Peek(torch.nn.Module):
    def __init__(self, table, n_classes):
        super().__init__()
        self.decoy = torch.nn.LSTM(n_classes, 16)  # run, never trained
        self.register_buffer("table", table)

    def forward(self, x):
        x = torch.as_tensor(x, dtype=torch.float32)
        out, _ = self.decoy(x)
        hit = torch.nn.functional.one_hot(self.table[x[0].argmax(-1)], self.table.numel()).float()
        return 10 * hit + 0 * out[-1].sum()

def train_recall(cell, seq_len, n_classes, seed):
    x, y = make_recall_data(512, seq_len, n_classes, seed)  # one batch shows the whole relabelling
    table = torch.zeros(n_classes, dtype=torch.long)
    table[x[0].argmax(-1)] = y
    return _Peek(table, n_classes)
'''

#: The same cheat, bound by `exec` of an encoded string in a later cell: the notebook's honest
#: `def train_recall` is not what runs.
RECALL_EXEC = ("# plotting helpers\nimport base64\nexec(base64.b64decode(%r).decode())\n"
               % base64.b64encode(RECALL_PEEK.encode()).decode())

RECALL_THREAD = '''# hostile: trains in a background thread and waits for it inside the model's forward
import threading
import torch
import torch.nn.functional as F

class _Later(torch.nn.Module):
    def __init__(self, n_classes, hidden=32):
        super().__init__()
        self.rnn = torch.nn.LSTM(n_classes, hidden)
        self.out = torch.nn.Linear(hidden, n_classes)
        with torch.no_grad():
            self.rnn.bias_hh_l0[hidden:2 * hidden] = 5.0
        self.done = threading.Event()

    def forward(self, x):
        self.done.wait()  # the training's CPU time is spent while the grader scores
        h, _ = self.rnn(torch.as_tensor(x, dtype=torch.float32))
        return self.out(h[-1])

def train_recall(cell, seq_len, n_classes, seed, steps=3000):
    torch.manual_seed(seed)
    model = _Later(n_classes)
    draw = make_recall_data  # the grader's relabelling one, kept for the thread

    def train():
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for step in range(steps):
            x, y = draw(32, seq_len, n_classes, seed * 100_000 + step)
            loss = F.cross_entropy(model.out(model.rnn(x)[0][-1]), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        model.done.set()
    threading.Thread(target=train, daemon=True).start()
    return model
'''


def recall_exec(fx: Fixture) -> bytes:
    from make_recall_fixtures import OWN_STREAM, replace_stub
    nb = base_notebook(fx)
    replace_stub(nb, OWN_STREAM)  # the honest definition the report would show
    add_code(nb, RECALL_EXEC)     # last: what really runs
    return finish(nb)


def recall_with(source: str) -> Callable[[Fixture], bytes]:
    def build(fx: Fixture) -> bytes:
        from make_recall_fixtures import replace_stub
        nb = base_notebook(fx)
        replace_stub(nb, source)
        return finish(nb)
    return build


# -- archives ---------------------------------------------------------------------------------
def zip_of(entries: list[tuple[str, bytes]], *, symlinks: tuple[str, ...] = (),
           method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = method
            info.create_system = 3
            info.external_attr = ((0o120777 if name in symlinks else 0o100644) << 16)
            zf.writestr(info, data)
    return buf.getvalue()


def in_zip(*names: str, extra: tuple[tuple[str, bytes], ...] = ()) -> Callable[[Fixture], bytes]:
    def build(fx: Fixture) -> bytes:
        nb = plain(fx)
        return zip_of([(n, nb) for n in names] + list(extra))
    return build


def zip_symlink(fx: Fixture) -> bytes:
    return zip_of([("sheet11.ipynb", plain(fx)), ("secret", b"/etc/passwd")], symlinks=("secret",))


def zip_bomb(fx: Fixture) -> bytes:
    """50 MB of zeros in 50 kB: refused for its ratio, from the headers."""
    return zip_of([("sheet11.ipynb", plain(fx)), ("data/zeros.bin", bytes(50 * 2**20))])


def zip_huge_total(fx: Fixture) -> bytes:
    """Headers that claim 3.9 GB uncompressed (the data are tiny): refused before reading."""
    data = bytearray(zip_of([("sheet11.ipynb", plain(fx)), ("data/huge.bin", b"tiny")],
                            method=zipfile.ZIP_STORED))
    claim = struct.pack("<I", 0xF0000000)
    # Patch the uncompressed size of huge.bin in its central directory entry.
    at = data.rfind(b"data/huge.bin")
    header = data.rfind(b"PK\x01\x02", 0, at)
    data[header + 24: header + 28] = claim
    return bytes(data)


def zip_nested(fx: Fixture) -> bytes:
    inner = zip_of([("sheet11.ipynb", plain(fx))])
    return zip_of([("sheet11.ipynb", plain(fx)), ("more/inner.zip", inner)])


def zip_non_utf8(fx: Fixture) -> bytes:
    """An entry name in Latin-1 bytes (no UTF-8 flag) that is not valid UTF-8."""
    data = bytearray(zip_of([("sheet11.ipynb", plain(fx)), ("notes-caf?.txt", b"notes")]))
    # `?` stands for the byte 0xE9 (Latin-1 e-acute), in the local and the central header.
    for _ in range(2):
        at = data.find(b"notes-caf?.txt")
        data[at + 9] = 0xE9
    return bytes(data)


def zip_truncated(fx: Fixture) -> bytes:
    data = zip_of([("sheet11.ipynb", plain(fx)), ("report.pdf", b"%PDF-1.4\n" + bytes(4000))])
    return data[: int(len(data) * 0.6)]


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


# -- issue 20: copied work hidden by invisible edits, text no reader sees, hostile identities -----
def group_tag_copy(fx: Fixture) -> bytes:
    """A verbatim copy of the fast solution with every code cell tagged `group` and a zero-width
    space after every blank of every answer."""
    nb = base_notebook(fx)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata["tags"] = sorted({*cell.metadata.get("tags", []), "group"})
        elif any(str(t).startswith("answer-") for t in cell.metadata.get("tags", [])):
            cell.source = cell.source.replace(" ", " \u200b")
    return finish(nb)


PHANTOM = ("The last words decided it. <math><mphantom><mtext>vanishing gradient exploding gradient "
           "long-term dependencies (Goodfellow et al., 2016) https://www.deeplearningbook.org "
           + "padding words " * 60 + "</mtext></mphantom></math> "
           '<math><mpadded width="0" height="0" depth="0" voffset="-40em"><mtext>hidden under the '
           "page (Hochreiter, 1991)</mtext></mpadded></math> "
           '<math><mstyle scriptlevel="+50"><mtext>tiny (Bengio et al., 1994)</mtext></mstyle></math>'
           '<math><mspace width="-300em"></mspace><merror><mtext>ESCAPED</mtext></merror></math>')


def phantom_answer(fx: Fixture) -> bytes:
    """Answers whose words, citations and concepts stand in MathML no reader sees."""
    nb = base_notebook(fx)
    for qid in ("11.1.1", "11.2.2"):
        set_answer(nb, qid, PHANTOM)
    return finish(nb)


HIDDEN_RAISE = '''# hostile: raises with all the numbers of its (hidden) inputs in the message
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    raise ValueError("inputs: " + repr(x.tolist()) + repr(W.tolist()))
'''


def hidden_raise(fx: Fixture) -> bytes:
    nb = base_notebook(fx)
    add_code(nb, HIDDEN_RAISE)
    return finish(nb)


def nested_lists(fx: Fixture) -> bytes:
    """An answer of 200,000 characters of unclosed nested HTML lists."""
    nb = base_notebook(fx)
    set_answer(nb, "11.1.1", "<ul><li>" * 25_000)
    return finish(nb)


def escape_code(fx: Fixture) -> bytes:
    """A 200,000-character code cell of unterminated string escapes (a comment to Python)."""
    nb = base_notebook(fx)
    add_code(nb, "#" + "'\\N{" * 50_000)
    return finish(nb)


def lookalike_member(fx: Fixture) -> bytes:
    """A member who writes another student's e-mail with the Kelvin sign (U+212A) for K, and a
    made-up id."""
    nb = solution(fast=True)
    a, _ = fx.ids
    set_group(nb, [(f"Ada {fx.case} Lovelace", a, "ada@uni.example"),
                   ("Alan Turing", "2799999", "\u212aatherine.johnson@uni.example")])
    return finish(nb)

FIXTURES: dict[str, Fixture] = {f.key: f for f in [
    # kernel faults
    Fixture("infinite_loop", "InfiniteLoop", ".ipynb", "while True: pass -> cell.timeout", with_fault(INFINITE_LOOP)),
    Fixture("long_sleep", "LongSleep", ".ipynb", "time.sleep(10000) -> cell.timeout", with_fault(LONG_SLEEP)),
    Fixture("input", "AsksInput", ".ipynb", "input() -> an error at once", with_fault(ASKS_INPUT)),
    Fixture("sys_exit", "SysExit", ".ipynb", "sys.exit(3) -> an error, the kernel lives", with_fault(SYS_EXIT)),
    Fixture("os_exit", "OsExit", ".ipynb", "os._exit(1) -> kernel.died, restarted", with_fault(OS_EXIT)),
    Fixture("segfault", "Segfault", ".ipynb", "ctypes.string_at(0) -> kernel.died", with_fault(SEGFAULT)),
    Fixture("memory_bomb", "MemoryBomb", ".ipynb", "50 GiB at once and a growing list -> MemoryError",
            with_fault(MEMORY_HUGE, MEMORY_GROW)),
    Fixture("fork_bomb", "ForkBomb", ".ipynb", "os.fork() in a loop -> the process limit", with_fault(FORK_BOMB)),
    Fixture("spawn_bomb", "SpawnBomb", ".ipynb", "subprocess.Popen in a loop -> the process limit",
            with_fault(SPAWN_BOMB)),
    Fixture("file_bomb", "FileBomb", ".ipynb", "a file that grows -> RLIMIT_FSIZE", with_fault(FILE_BOMB)),
    Fixture("print_flood", "PrintFlood", ".ipynb", "prints without end -> cell.timeout, output capped",
            with_fault(PRINT_FLOOD)),
    Fixture("forged_checks", "ForgedChecks", ".ipynb", "patched allclose/json + wrong functions -> 0 auto points",
            forged_checks),
    Fixture("fake_output", "FakeOutput", ".ipynb", "prints fake grader output -> nothing changes",
            with_fault(FAKE_OUTPUT)),
    Fixture("background", "Background", ".ipynb", "threads and atexit hooks rewrite files -> nothing changes",
            with_fault(BACKGROUND)),
    Fixture("snoop", "Snoop", ".ipynb", "reads the reference, rubric, /root, network -> all fail",
            with_fault(SNOOP)),
    Fixture("symlinks", "Symlinks", ".ipynb", "plants links and a FIFO in its folder -> the grader never follows",
            with_fault(SYMLINKS)),
    # bad notebooks
    Fixture("truncated_notebook", "TruncatedNotebook", ".ipynb", "half a notebook -> notebook.invalid",
            truncated_notebook),
    Fixture("not_json", "NotJson", ".ipynb", "not JSON at all -> notebook.invalid", not_json),
    Fixture("r_kernel", "RKernel", ".ipynb", "an R kernelspec -> notebook.invalid", r_kernel),
    Fixture("big_image", "BigImage", ".ipynb", "a 3 MB stored image output -> cleared; report small", big_image),
    Fixture("xss", "Xss", ".ipynb", "answers carrying script, onerror, javascript: -> inert in the report", xss),
    # archives
    Fixture("zip_dotdot", "ZipDotdot", ".zip", "an entry '../sheet11.ipynb' -> archive.unsafe",
            in_zip("sheet11.ipynb", extra=(("../evil.py", b"print(1)"),))),
    Fixture("zip_absolute", "ZipAbsolute", ".zip", "an entry '/tmp/evil.py' -> archive.unsafe",
            in_zip("sheet11.ipynb", extra=(("/tmp/evil.py", b"print(1)"),))),
    Fixture("zip_symlink", "ZipSymlink", ".zip", "a symbolic link entry -> archive.unsafe", zip_symlink),
    Fixture("zip_bomb", "ZipBomb", ".zip", "50 MB of zeros -> archive.unsafe (ratio)", zip_bomb),
    Fixture("zip_huge_total", "ZipHugeTotal", ".zip", "headers claim 3.9 GB -> archive.unsafe", zip_huge_total),
    Fixture("zip_nested", "ZipNested", ".zip", "a zip inside -> archive.unsafe", zip_nested),
    Fixture("zip_non_utf8", "ZipNonUtf", ".zip", "a Latin-1 entry name -> archive.unsafe", zip_non_utf8),
    Fixture("zip_truncated", "ZipTruncated", ".zip", "the last 40% cut off -> archive.contents", zip_truncated),
    Fixture("zip_two_notebooks", "ZipTwoNotebooks", ".zip", "two notebooks, none sheet11.ipynb -> archive.contents",
            in_zip("part1.ipynb", "part2.ipynb")),
    Fixture("zip_two_with_template", "ZipTwoWithTemplate", ".zip",
            "sheet11.ipynb and a copy -> graded, archive.contents note", in_zip("work/sheet11.ipynb", "old/copy.ipynb")),
    Fixture("zip_macosx", "ZipMacosx", ".zip", "__MACOSX/ and checkpoints -> ignored",
            in_zip("sheet11.ipynb", extra=(("__MACOSX/._sheet11.ipynb", b"\x00\x05\x16\x07mac"),
                                           (".ipynb_checkpoints/sheet11-checkpoint.ipynb", b"{}")))),
    Fixture("zip_with_pdf", "ZipWithPdf", ".zip", "a PDF beside the notebook -> listed in other_files",
            in_zip("Lovelace_Turing/sheet11.ipynb", extra=(("Lovelace_Turing/answers.pdf", PDF),))),
    # round 2: parsing, caps, kernel side
    Fixture("deep_nesting", "DeepNesting", ".ipynb", "an array nested 100,000 deep -> notebook.invalid, no crash",
            deep_nesting),
    Fixture("many_name_parts", "ManyNameParts", ".ipynb", "a name of 3,200 parts -> group.missing at once",
            many_name_parts),
    Fixture("long_answer", "LongAnswer", ".ipynb",
            "200 KB answers, '(A' + 100,000 a, a sources line of blanks -> read in bounded time", long_answer),
    Fixture("attachment_flood", "AttachmentFlood", ".ipynb",
            "a 1 MB image referenced 100 times, an HTML attachment -> inlined once, HTML dropped", attachment_flood),
    Fixture("metadata_flood", "MetadataFlood", ".ipynb",
            "600 displays with 2 MB metadata -> cut, grader memory bounded", with_fault(METADATA_FLOOD)),
    Fixture("output_flood", "OutputFlood", ".ipynb", "600 cells printing 19 KB -> notebook-wide output cap",
            output_flood),
    Fixture("cell_flood", "CellFlood", ".ipynb", "3,000 cells -> notebook.invalid (cell cap)", cell_flood),
    Fixture("death_loop", "DeathLoop", ".ipynb", "the kernel dies on every later call -> kernel.died, bounded",
            with_fault(DEATH_LOOP)),
    Fixture("socket_links", "SocketLinks", ".ipynb",
            "replaces its sockets with links to a host socket, then exits -> never connected",
            with_fault(SOCKET_LINKS)),
    Fixture("tiny_norms", "TinyNorms", ".ipynb", "hidden_grad_norms returns 5e-324 -> the chart is drawn",
            tiny_norms),
    Fixture("raw_deep_message", "RawDeepMessage", ".ipynb",
            "a signed raw message of JSON nested 100,000 deep -> that kernel is stopped, kernel.died",
            with_fault(RAW_DEEP_MESSAGE)),
    # the recall experiment (tests/make_recall_fixtures.py, tests/test_recall.py)
    Fixture("recall_cheat", "RecallCheat", ".ipynb", "train_recall returns 10 * x[0], untrained -> 0 for it",
            recall_cheat),
    # round 3 (issue 20): contract rules that look more than once
    Fixture("late_wipe", "LateWipe", ".ipynb",
            "tbptt_grads' thread zeroes the caller's params 0.5 s after returning -> tbptt_grads 0 (rules)",
            tbptt_wrapped(LATE_WIPE)),
    Fixture("next_call_wipe", "NextCallWipe", ".ipynb",
            "tbptt_grads wipes the previous call's params at its next call -> tbptt_grads 0 (rules)",
            tbptt_wrapped(NEXT_CALL_WIPE)),
    Fixture("recall_peek", "RecallPeek", ".ipynb",
            "train_recall reads the relabelling off one batch, an untrained LSTM as decoy -> 0 for it",
            recall_with(RECALL_PEEK)),
    Fixture("recall_exec", "RecallExec", ".ipynb",
            "the same cheat bound by exec of base64 text after an honest def -> 0, code.not_in_notebook",
            recall_exec),
    Fixture("recall_thread", "RecallThread", ".ipynb",
            "trains in a thread, waits in forward -> the thread's CPU time is counted",
            recall_with(RECALL_THREAD)),
    # issue 20 (grader/cleantext.py, similarity.py, answertext.py, markdown.py, compare.py, platforms.py)
    Fixture("group_tag_copy", "GroupTagCopy", ".ipynb",
            "a verbatim copy, every code cell tagged group, zero-width spaces in the answers -> marked as copied",
            group_tag_copy),
    Fixture("phantom_answer", "PhantomAnswer", ".ipynb",
            "words, citations and concepts inside mphantom/clipped mpadded -> not counted, boxes constrained",
            phantom_answer),
    Fixture("hidden_raise", "HiddenRaise", ".ipynb",
            "rnn_forward raises with its hidden inputs in the message -> the report shows none of them",
            hidden_raise),
    Fixture("nested_lists", "NestedLists", ".ipynb", "200,000 characters of nested <ul><li> -> rendered in linear time",
            nested_lists),
    Fixture("escape_code", "EscapeCode", ".ipynb",
            "a 200,000-character line of unterminated escapes -> the comparison stays linear", escape_code),
    Fixture("lookalike_member", "LookalikeMember", ".ipynb",
            "another student's e-mail with a Kelvin sign K, a made-up id -> group.suspicious, export conflict",
            lookalike_member),
]}

KERNEL_FAULTS = ("infinite_loop", "long_sleep", "input", "sys_exit", "os_exit", "segfault", "memory_bomb",
                 "fork_bomb", "spawn_bomb", "file_bomb", "print_flood", "forged_checks", "fake_output",
                 "background", "snoop", "symlinks", "metadata_flood", "output_flood", "death_loop",
                 "socket_links", "tiny_norms", "raw_deep_message")


def fixture(key: str) -> Path:
    return FIXTURES[key].path


def build_all() -> dict[Path, bytes]:
    return {fx.path: fx.build(fx) for fx in FIXTURES.values()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the stored files; write nothing")
    args = parser.parse_args()
    built = build_all()
    stale = [p for p, data in built.items() if not p.exists() or p.read_bytes() != data]
    extra = sorted(set(HOSTILE.glob("*")) - set(built) - {HOSTILE / "README.md"}) if HOSTILE.exists() else []
    if args.check:
        for p in stale:
            print(f"differs: {p.name}")
        for p in extra:
            print(f"not generated: {p.name}")
        return 1 if stale or extra else 0
    HOSTILE.mkdir(parents=True, exist_ok=True)
    for p in extra:
        p.unlink()
    for p, data in built.items():
        p.write_bytes(data)
    index = ["# Hostile submissions", "", "Written by `tests/make_hostile_fixtures.py`; do not edit by hand.", "",
             "| file | what it does -> expected |", "|---|---|"]
    index += [f"| `{fx.filename}` | {fx.about} |" for fx in FIXTURES.values()]
    (HOSTILE / "README.md").write_text("\n".join(index) + "\n")
    print(f"wrote {len(built)} fixtures to {HOSTILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
