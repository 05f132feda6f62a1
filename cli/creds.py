"""`aiub creds init DIR --hub NAME=ADDRESS ...`: everything a multi-host lab needs to authenticate.

Writes (docs/multi-host.md):

    DIR/lab.json          the hub nodes, ports, TLS on or off           (every host)
    DIR/secrets.json      a random password per NATS user (0600)        (hub hosts)
    DIR/ca.pem            the lab's private CA certificate              (every host)
    DIR/ca-bundle.pem     ca.pem + the public CAs (certifi): what aiub's processes trust
    DIR/ca-key.pem        the CA's key (0600): keep it off the hosts once the lab is made
    DIR/<hub>/server.pem, server-key.pem   a hub node's certificate (server and client auth)
    DIR/gpu/              what a GPU host gets: lab.json, ca*.pem, secrets.json with the worker's only

Passwords, not NKEYs: the user name in a URL is what gives each service its private inbox
prefix (shared/bus.py), nats-py needs no extra package for it, and over TLS a 192-bit random
password is as good a secret as a seed. The server config holds them in clear, so it lives in
the 0600 state dir of hub hosts only.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.lab import BUS_SECRET, ROUTE_USER, SERVICE_USERS, HubNode, Lab, LabError, make_lab, parse_hub

VALID_DAYS = 825


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="creds_command", required=True)
    init = actions.add_parser("init", help="make a lab's NATS users, passwords, CA and certificates")
    init.add_argument("dir", help="the lab directory to write")
    init.add_argument("--hub", action="append", required=True, metavar="NAME=ADDRESS",
                      help="a hub node and the address other hosts reach it at (repeat: one or three)")
    init.add_argument("--no-tls", action="store_true",
                      help="plain TCP between hosts (passwords still required): only on a trusted network")
    init.add_argument("--force", action="store_true", help="overwrite a lab directory that exists")


def main(args: argparse.Namespace) -> int:
    try:
        lab = make_lab([parse_hub(h) for h in args.hub], tls=not args.no_tls)
    except LabError as e:
        print(f"aiub creds init: {e}", file=sys.stderr)
        return 2
    out = Path(args.dir)
    if (out / "lab.json").exists() and not args.force:
        print(f"aiub creds init: {out} already holds a lab; --force replaces every credential in it", file=sys.stderr)
        return 2
    write_lab(out, lab)
    print(f"lab written to {out}: {len(lab.hubs)} hub node(s), TLS {'on' if lab.tls else 'OFF'}")
    print(f"  hub hosts:  copy {out} (all of it but ca-key.pem) to each, then `aiub hub --lab DIR --node NAME`")
    print(f"  GPU hosts:  copy {out / 'gpu'} to each, then `aiub join --lab DIR --provider KEY`")
    return 0


def write_lab(out: Path, lab: Lab) -> None:
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    passwords = {user: secrets.token_urlsafe(24) for user in (*SERVICE_USERS, ROUTE_USER, BUS_SECRET)}
    _write(out / "lab.json", msgspec.json.format(msgspec.json.encode(lab), indent=2).decode() + "\n", 0o644)
    _write(out / "secrets.json", json.dumps(passwords, indent=2) + "\n", 0o600)
    gpu = out / "gpu"
    gpu.mkdir(exist_ok=True)
    shutil.copy(out / "lab.json", gpu / "lab.json")
    _write(gpu / "secrets.json", json.dumps({k: passwords[k] for k in ("worker", BUS_SECRET)}, indent=2) + "\n", 0o600)
    if not lab.tls:
        return
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _ca_certificate(ca_key)
    _write(out / "ca-key.pem", _key_pem(ca_key), 0o600)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    _write(out / "ca.pem", ca_pem, 0o644)
    _write(out / "ca-bundle.pem", ca_pem + _public_cas(), 0o644)
    for name in ("ca.pem", "ca-bundle.pem"):
        shutil.copy(out / name, gpu / name)
    for node in lab.hubs:
        key = ec.generate_private_key(ec.SECP256R1())
        (out / node.name).mkdir(exist_ok=True)
        _write(out / node.name / "server-key.pem", _key_pem(key), 0o600)
        _write(out / node.name / "server.pem",
               _node_certificate(node, key, ca, ca_key).public_bytes(serialization.Encoding.PEM).decode(), 0o644)


def _write(path: Path, text: str, mode: int) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _public_cas() -> str:
    try:
        import certifi

        return "\n" + Path(certifi.where()).read_text()
    except (ImportError, OSError):  # then the private CA alone: cloud APIs need their own bundle
        return ""


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(hours=1), now + datetime.timedelta(days=VALID_DAYS)


def _ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aiub lab CA")])
    start, end = _validity()
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))


def _node_certificate(node: HubNode, key: ec.EllipticCurvePrivateKey, ca: x509.Certificate,
                      ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    names: list[x509.GeneralName] = [x509.DNSName(node.name), x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(node.address)))
    except ValueError:
        names.append(x509.DNSName(node.address))
    start, end = _validity()
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node.name)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # Server auth for clients and routes; client auth for the routes it dials itself.
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
