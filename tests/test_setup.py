"""scripts/setup's two questions about torch (scripts/torch_build.py): is PyTorch's CPU index
reachable (probed on loopback only here), and which build came, said in one line."""
from __future__ import annotations

import http.server
import importlib.util
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "torch_build.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("torch_build", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Index(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
        self.end_headers()
        self.wfile.write(b"<html></html>")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback_index() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_probe_says_yes_when_the_index_answers(loopback_index):
    done = _run("probe", f"{loopback_index}/whl/cpu/torch/", "5")
    assert done.returncode == 0, done.stderr


def test_probe_says_no_with_the_reason_when_nothing_listens():
    url = f"http://127.0.0.1:{_closed_port()}/whl/cpu/torch/"
    done = _run("probe", url, "2")
    assert done.returncode == 1
    assert f"setup: {url} not reachable within 2 s" in done.stderr


def test_probe_says_no_when_the_index_has_no_torch(loopback_index):
    done = _run("probe", f"{loopback_index}/elsewhere/", "5")
    assert done.returncode == 1 and "HTTP 404" in done.stderr


def test_describe_names_this_machines_cpu_build_with_its_size():
    done = _run("describe", "from the default index")
    assert done.returncode == 0, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"setup: torch {torch.__version__}, CPU build, ")
    assert line.endswith(" installed (from the default index)")
    size, unit = line.split(", ")[2].split()[:2]
    assert unit in ("MB", "GB") and float(size) > (0.1 if unit == "GB" else 100)


def test_describe_names_a_cuda_build_and_fails(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    line, code = _load().describe("from the default index")
    assert code == 3 and ", CUDA 12.8 build, " in line
