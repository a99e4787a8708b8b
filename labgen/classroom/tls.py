"""HTTPS for the web app (`[classroom] tls = true`, or `classroom.serve --tls`): a CA of the classroom's own,
made once in its state dir, and a certificate for the address it listens on. The cards name the CA's
SHA-256 fingerprint, and the web app serves the CA at /ca.crt, so a trainee can check what the browser
shows before trusting it. openssl does the work, with argv lists; the SAN goes in through a file."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

from provision.facts import ip_json

from ..errors import BackendFailed
from .config import Classroom

DAYS = "397"  # what browsers accept for a server certificate
CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def tls_dir(room: Classroom) -> Path:
    return room.state / "tls"


def _openssl(*argv: str) -> None:
    r = subprocess.run(["openssl", *argv], capture_output=True, text=True, check=False)
    if r.returncode:
        raise BackendFailed(f"openssl {argv[0]} failed: {r.stderr.strip()}", "apt-get install openssl")


def addresses(room: Classroom) -> list[str]:
    """Where trainees reach the classroom: the address it listens on, or each global address of this host
    when it listens on all of them."""
    if not ipaddress.ip_address(room.listen).is_unspecified:
        return [room.listen]
    r = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=False)
    found = [a["local"] for link in ip_json(r.stdout or "[]") for a in link.get("addr_info", [])
             if a.get("scope") == "global"]  # fmt: skip
    return found or ["127.0.0.1"]


def names(room: Classroom) -> list[str]:
    """What the certificate is valid for: those addresses, and this host's name."""
    host = socket.gethostname()
    return [*(f"IP:{a}" for a in addresses(room)), *([f"DNS:{host}"] if host else [])]


def ensure(room: Classroom) -> Path:
    """The CA (made once) and a certificate for what the classroom listens on (made again when that
    changed); the directory that holds them."""
    d = tls_dir(room)
    d.mkdir(mode=0o700, exist_ok=True)
    ca, ca_key = d / "ca.crt", d / "ca.key"
    if not ca.exists():
        _openssl("req", "-x509", *CURVE, "-keyout", str(ca_key), "-out", str(ca), "-days", "3650",
                 "-subj", f"/CN=OVN classroom {room.prefix} CA", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    want = ",".join(names(room))
    made = d / "server.names"
    if not (d / "server.crt").exists() or not made.exists() or made.read_text() != want:
        with tempfile.TemporaryDirectory() as tmp:
            ext, csr = Path(tmp) / "ext", Path(tmp) / "csr"
            ext.write_text(f"subjectAltName={want}\nextendedKeyUsage=serverAuth\n")
            _openssl("req", *CURVE, "-keyout", str(d / "server.key"), "-out", str(csr),
                     "-subj", f"/CN={room.listen}")  # fmt: skip
            _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
                     "-out", str(d / "server.crt"), "-days", DAYS, "-extfile", str(ext))  # fmt: skip
        made.write_text(want)
    return d


def fingerprint(ca: Path) -> str:
    """The CA's SHA-256 fingerprint as browsers show it: AB:CD:..."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(ca.read_text())).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
