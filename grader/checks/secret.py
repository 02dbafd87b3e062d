"""The per-course secret that hidden inputs are drawn from.

The rubric's hidden case seeds are small numbers a student function could search (a six-digit
seed space is brute-forced in seconds from the inputs it receives). Hidden inputs are therefore
drawn from a keyed hash of the case under a secret of 256 random bits that is kept *outside* the
rubric: the rubric says which cases exist, the secret says what their numbers are. Without the
secret the inputs cannot be reproduced; with it, grading is deterministic (a re-grade draws the
same inputs). Public examples do not use it: students reproduce them from the rubric alone.

Where the secret lives, first match wins:

1. the ``path`` a caller passes (e.g. a command-line option);
2. the file named by the environment variable ``SHEET11_SECRET_FILE``;
3. ``$XDG_CONFIG_HOME/sheet11/secret`` (``~/.config/sheet11/secret`` by default).

A missing file is created (mode 0600, 64 hex digits) the first time hidden cases are drawn and the
grader logs where; keep it for the whole course (back it up with the gradebook) so re-grades give
the same results, and never put it where students can read it.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from grader.errors import SecretError

ENV_VAR = "SHEET11_SECRET_FILE"
#: Bytes of randomness in a new secret, and the least a secret file must hold.
SECRET_BYTES = 32
MIN_SECRET_BYTES = 16
# A secret file is a few dozen bytes; a larger file is a wrong path, not a secret.
MAX_SECRET_FILE_BYTES = 4096

log = logging.getLogger("grader")


def default_path() -> Path:
    """Where the secret is looked for when neither a path nor ``SHEET11_SECRET_FILE`` is given."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "sheet11" / "secret"


def secret_path(path: str | Path | None = None) -> Path:
    """The secret file that :func:`load_secret` would use."""
    if path is not None:
        return Path(path)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else default_path()


def load_secret(path: str | Path | None = None, create: bool = True) -> bytes:
    """The course's secret (its file's bytes, surrounding whitespace stripped).

    Raises
    ------
    SecretError
        The file cannot be read or made, holds fewer than 16 bytes, or others may read it.
    """
    p = secret_path(path)
    if not p.exists() and not p.is_symlink():
        if not create:
            raise SecretError(f"the secret file {p} does not exist; grade once to create it, or set "
                              f"{ENV_VAR} to the course's secret file")
        _create(p)
    try:
        # O_NOFOLLOW is not used: a tutor may keep the secret behind a link of their own making.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise SecretError(f"the secret file {p} cannot be read ({exc.strerror}); fix its permissions "
                          f"or set {ENV_VAR} to another file") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"the secret file {p} is not a regular file; set {ENV_VAR} to the "
                              "course's secret file")
        # Whoever can read the secret can recompute every hidden input: refuse a readable one
        # rather than grade with a secret that may have leaked.
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(f"the secret file {p} may be read by others (mode "
                              f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {p}`")
        data = os.read(fd, MAX_SECRET_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretError(f"the secret file {p} is larger than {MAX_SECRET_FILE_BYTES} bytes; "
                          "is it the right file?")
    secret = data.strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretError(f"the secret file {p} holds {len(secret)} bytes; at least "
                          f"{MIN_SECRET_BYTES} are needed. Delete it to have a new one made")
    return secret


def _create(p: Path) -> None:
    try:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: two graders starting at once must not each write a different secret.
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise SecretError(f"the secret file {p} cannot be created ({exc.strerror}); set {ENV_VAR} "
                          "to a file in a writable place") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(SECRET_BYTES) + "\n")
    log.warning("created the course secret %s: hidden inputs are drawn from it; keep it (mode 0600) "
                "for the whole course so re-grades give the same results", p)


def derive(secret: bytes, *parts: object) -> bytes:
    """HMAC-SHA256 of ``parts`` (joined unambiguously) under ``secret``: 256 bits."""
    message = "\x1f".join(f"{len(str(x))}:{x}" for x in parts).encode()
    return hmac.new(secret, message, hashlib.sha256).digest()


def secret_id(secret: bytes) -> str:
    """A keyed digest that names the secret without revealing it (16 hex digits): two results
    with the same id were graded under the same secret. The same digest as the cluster's
    fingerprint (grader/batch/cluster.py), so the two agree."""
    return hmac.new(secret, b"sheet11 cluster fingerprint", hashlib.sha256).hexdigest()[:16]
