"""The course's cluster credentials: a certificate authority of its own and one certificate per
Dask role, so that scheduler, workers and coordinator (``grade --cluster``) authenticate each
other with mutual TLS (Dask distributed's ``Security``) and nobody else joins.

``grade cluster-credentials`` (:func:`make_credentials`) makes, with the ``cryptography``
package, in the folder ``cluster/`` beside the course secret (grader/checks/secret.py decides where the
secret lives: ``SHEET11_SECRET_FILE``, else ``$XDG_CONFIG_HOME/sheet11/``), folder mode 0700,
every file 0600:

- ``ca.pem`` (the course CA's certificate: every machine) and ``ca-key.pem`` (its private key:
  never copied anywhere; with it anybody can make certificates the cluster accepts);
- ``scheduler.pem``/``scheduler-key.pem``, ``worker.pem``/``worker-key.pem``,
  ``client.pem``/``client-key.pem``: a certificate signed by the course CA and its key, one pair
  per role (:data:`ROLES`).

It refuses to overwrite existing credentials unless asked (``force``): the running machines
would then hold certificates of another CA. :func:`course_security` reads them back as a Dask
``Security`` for one role with ``require_encryption=True``; a missing or unreadable file, or a
private key others may read, is a :class:`~grader.errors.UsageError` naming
``grade cluster-credentials``. :func:`make_credentials` into a fresh 0700 temporary folder is
what ``--cluster local:N`` does for every run (a CA that exists for that run only).

Dask checks only that a peer's certificate is signed by the CA, not its role: whoever holds any
of the role keys can join in any role. The result MAC under the course secret
(grader/batch/cluster.py) is what a worker's key alone cannot forge.
"""
from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path
from typing import Any

from grader.errors import UsageError

ROLES = ("scheduler", "worker", "client")
FOLDER = "cluster"
CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
#: How long the course's certificates are valid (a course, with margin); per-run ones: a day.
COURSE_DAYS = 400
RUN_DAYS = 1
COMMAND = "grade cluster-credentials"


def credentials_dir(directory: str | Path | None = None) -> Path:
    """Where the course's cluster credentials are: ``directory`` if given, else ``cluster/``
    beside the course secret file."""
    if directory is not None:
        return Path(directory)
    from grader.checks.secret import secret_path
    return secret_path().parent / FOLDER


def cert_files(role: str) -> tuple[str, str]:
    """The certificate and key file names of ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return f"{role}.pem", f"{role}-key.pem"


def where_to_copy(directory: Path) -> list[tuple[str, list[str]]]:
    """Which files each machine needs (printed by ``grade cluster-credentials``)."""
    ca = str(directory / CA_CERT)
    return [("the scheduler machine", [ca, *(str(directory / f) for f in cert_files("scheduler"))]),
            ("every worker machine", [ca, *(str(directory / f) for f in cert_files("worker"))]),
            ("the coordinator (where you run `grade ... --cluster`)",
             [ca, *(str(directory / f) for f in cert_files("client"))])]


def make_credentials(directory: str | Path | None = None, force: bool = False,
                     days: int = COURSE_DAYS, name: str = "sheet11 course") -> Path:
    """Make the CA and one certificate per role in ``directory`` (default: beside the course
    secret); returns the folder. Existing credentials are a UsageError unless ``force``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = credentials_dir(directory)
    names = [CA_CERT, CA_KEY, *(f for role in ROLES for f in cert_files(role))]
    present = [n for n in names if (folder / n).exists() or (folder / n).is_symlink()]
    if present and not force:
        raise UsageError(f"cluster credentials already exist in {folder} ({', '.join(present)}); the machines "
                         "that run now hold certificates of that CA. Run `grade cluster-credentials --force` "
                         "to make new ones (then copy them to every machine again)")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    def pem_key(key: Any) -> bytes:
        return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    files: dict[str, bytes] = {CA_CERT: ca.public_bytes(serialization.Encoding.PEM), CA_KEY: pem_key(ca_key)}
    for role in ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {role}")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                # every role both listens and connects (the scheduler connects to workers)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"sheet11-{role}")]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        cert_name, key_name = cert_files(role)
        files[cert_name] = cert.public_bytes(serialization.Encoding.PEM)
        files[key_name] = pem_key(key)
    for file_name, data in files.items():
        _write_private(folder / file_name, data)
    return folder


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file of mode 0600 (an old file or link there is replaced, never
    followed)."""
    if path.is_symlink() or path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def role_files(role: str, directory: str | Path | None = None) -> tuple[str, str, str]:
    """``(ca, cert, key)`` paths of ``role``, checked: each exists, and the key (and its folder)
    is readable by its owner only. Else a UsageError naming the command that makes them."""
    folder = credentials_dir(directory)
    cert_name, key_name = cert_files(role)
    paths = [folder / CA_CERT, folder / cert_name, folder / key_name]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UsageError(f"the {role}'s cluster credentials are missing ({', '.join(missing)}). Run `{COMMAND}` "
                         "on the tutor's machine (it prints which files to copy to which machine), or set "
                         "SHEET11_SECRET_FILE so that they are found beside the course secret")
    key_path = paths[2]
    mode = stat.S_IMODE(key_path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"the private key {key_path} may be read by others (mode {mode:04o}); whoever reads "
                         f"it can join the grading cluster. Run `chmod 600 {key_path}`")
    return str(paths[0]), str(paths[1]), str(paths[2])


def course_security(role: str, directory: str | Path | None = None) -> Any:
    """A Dask ``Security`` for ``role`` with the course credentials: mutual TLS required."""
    from distributed.security import Security
    ca, cert, key = role_files(role, directory)
    return Security(require_encryption=True, tls_ca_file=ca, **{f"tls_{role}_cert": cert, f"tls_{role}_key": key})


def tls_argv(role: str, directory: str | Path | None = None) -> list[str]:
    """The ``dask scheduler``/``dask worker`` options that make it use ``role``'s credentials."""
    ca, cert, key = role_files(role, directory)
    return ["--tls-ca-file", ca, "--tls-cert", cert, "--tls-key", key]


#: The environment that makes a Dask process refuse every unencrypted connection.
REQUIRE_ENCRYPTION_ENV = {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}
