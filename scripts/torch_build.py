"""The two questions `scripts/setup` asks about torch, answered with the standard library only.

``probe URL [SECONDS]``: exit 0 when PyTorch's CPU wheel index answers at ``URL`` within SECONDS
(default 5), else exit 1 with the reason on stderr. Only ``URL`` is contacted, once.

``describe [SOURCE]``: print one line saying which torch build is installed in this Python:
``setup: torch 2.13.0+cpu, CPU build, 1.2 GB installed (SOURCE)``, or ``..., CUDA 12.8 build,
... with 16 nvidia packages ...``. The size is the sum of the files the torch distribution and
every ``nvidia-*`` and ``triton`` distribution installed (their RECORD), so a CUDA build shows
what it really costs. Exit 0 for a CPU build, 3 for a CUDA (or ROCm) build, 1 without torch.

Run by scripts/setup with the project's virtual environment's Python; tested by tests/test_setup.py.
"""
from __future__ import annotations

import importlib.metadata as md
import sys
import urllib.error
import urllib.request
from pathlib import Path


def probe(url: str, seconds: float = 5.0) -> str | None:
    """None when ``url`` answers with a 2xx/3xx status within ``seconds``, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=seconds) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{url} not reachable within {seconds:g} s ({getattr(exc, 'reason', exc)})"
    return None if status < 400 else f"{url} answered HTTP {status}"


def _installed_bytes(dist: md.Distribution) -> int:
    total = 0
    for file in dist.files or ():
        try:
            total += Path(str(dist.locate_file(file))).stat().st_size
        except OSError:
            continue
    return total


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def describe(source: str) -> tuple[str, int]:
    """The line about the installed torch build and the exit code (0 CPU, 3 GPU, 1 no torch)."""
    try:
        torch_dist = md.distribution("torch")
    except md.PackageNotFoundError:
        return "setup: torch is not installed in this Python", 1
    import torch  # the build's own word: torch.version.cuda / .hip are None on a CPU build

    cuda = getattr(torch.version, "cuda", None)
    hip = getattr(torch.version, "hip", None)
    extras = [d for d in md.distributions()
              if (d.metadata["Name"] or "").lower().startswith(("nvidia-", "nvidia_", "triton"))]
    size = _installed_bytes(torch_dist) + sum(_installed_bytes(d) for d in extras)
    build = f"CUDA {cuda} build" if cuda else f"ROCm {hip} build" if hip else "CPU build"
    with_extras = f" with {len(extras)} nvidia/triton packages" if extras else ""
    line = f"setup: torch {torch.__version__}, {build}, {_size(size)} installed{with_extras} ({source})"
    return line, 3 if (cuda or hip) else 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "probe":
        why = probe(argv[1], float(argv[2]) if len(argv) > 2 else 5.0)
        if why:
            print(f"setup: {why}", file=sys.stderr)
            return 1
        return 0
    if argv and argv[0] == "describe":
        line, code = describe(argv[1] if len(argv) > 1 else "already installed")
        print(line, file=sys.stderr)
        return code
    print("usage: torch_build.py probe URL [SECONDS] | describe [SOURCE]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
