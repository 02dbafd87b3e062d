"""Tasks a hostile or broken grading worker could send back: objects whose unpickling runs code
(tests/test_cluster_security.py). Imported by the test's Dask scheduler and workers from
PYTHONPATH; unpickling any of them in a process leaves a file named after that process's pid."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def mark(folder: str) -> str:
    Path(folder, str(os.getpid())).touch()
    return "marked"


def mark_error(folder: str) -> Exception:
    mark(folder)
    return Exception("marked")


class Bomb:
    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __reduce__(self) -> tuple[Any, ...]:
        return (mark, (self.folder,))


class BombError(Exception):
    def __reduce__(self) -> tuple[Any, ...]:
        return (mark_error, (str(self.args[0]),))


def returns_a_bomb(folder: str) -> Any:
    return Bomb(folder)


def raises_a_bomb(folder: str) -> Any:
    raise BombError(folder)
