"""A multi-host lab: its hub nodes, how each NATS node is configured, and each service's URL list.

`aiub creds init` writes a lab directory (`lab.json`, `secrets.json`, a CA and a certificate per
hub node); `aiub hub` and `aiub join` read it. This module only describes and renders; files and
processes are the commands' business (cli/creds.py, cli/up/roles.py). docs/multi-host.md.

Rules:
- The hub nodes form one NATS cluster (routes between every pair, JetStream on each). GPU hosts
  run no NATS server: their workers are clients of the hub nodes, connecting outbound.
- Every connection is a named user with a password, permitted only its subjects
  (deploy/nats/auth.conf, the same table as compose); the cluster routes have their own user.
- With TLS (the default) clients and routes speak TLS to a certificate of the lab's private CA.
- A client's URL list names every hub node, its preferred one first (`preferred`); the servers
  do not advertise other addresses (`no_advertise`), so the list is all a client ever uses.
- Servers ping clients every `ping_interval_s` and drop one after `ping_max` unanswered pings:
  a GPU host that vanished without closing its connections (a cut link) stops receiving work
  within about `ping_interval_s * (ping_max + 1)` seconds.
"""

from __future__ import annotations

import re

import msgspec

# The users of deploy/nats/auth.conf, plus the cluster routes' own.
SERVICE_USERS = ("gateway", "router", "health", "worker", "client", "monitor")
ROUTE_USER = "route"
# Not a NATS user: the key the gateway signs each request's scope with and workers check
# (AIUB_BUS_SECRET, shared/scope.py), so a NATS client cannot skip the gateway's keys.
BUS_SECRET = "bus_secret"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


class LabError(ValueError):
    """A lab description that cannot work; the message names what and why."""


class HubNode(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str  # the NATS server_name and the certificate's directory
    address: str  # a host name or IP that every other host reaches this node at


class Lab(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    hubs: tuple[HubNode, ...]
    tls: bool = True
    client_port: int = 4222
    cluster_port: int = 6222
    monitor_port: int = 8222
    ping_interval_s: int = 1
    ping_max: int = 2

    def hub(self, name: str) -> HubNode:
        for node in self.hubs:
            if node.name == name:
                return node
        raise LabError(f"no hub node named {name!r} in this lab (its nodes: {', '.join(h.name for h in self.hubs)})")

    @property
    def jetstream_replicas(self) -> int:
        """R3 with three or more nodes (survives one lost), else R1."""
        return 3 if len(self.hubs) >= 3 else 1


def parse_hub(text: str) -> HubNode:
    """`hub1=10.0.0.1` or `hub1.example.org` (the name is the host's first label)."""
    name, equals, address = text.partition("=")
    if not equals:
        address, name = name, name.split(".")[0]
    name = name.strip().lower()
    if not _NAME.match(name):
        raise LabError(f"hub name {name!r}: use lower-case letters, digits and '-' (from --hub {text!r})")
    if not address.strip() or any(c in address for c in " ,/@:"):
        raise LabError(f"hub address {address!r}: a host name or IPv4 address (from --hub {text!r})")
    return HubNode(name=name, address=address.strip())


def make_lab(hubs: list[HubNode], tls: bool = True) -> Lab:
    if not hubs:
        raise LabError("a lab needs at least one hub node (--hub NAME=ADDRESS)")
    names = [h.name for h in hubs]
    if len(set(names)) != len(names):
        raise LabError(f"hub names repeat: {', '.join(names)}")
    if len(hubs) == 2:
        raise LabError("two hub nodes cannot keep a JetStream quorum when one is lost: use one or three")
    return Lab(hubs=tuple(hubs), tls=tls)


lab_decoder = msgspec.json.Decoder(Lab)
secrets_decoder = msgspec.json.Decoder(dict[str, str])


def urls(lab: Lab, user: str, password: str, preferred: str | None = None) -> str:
    """The comma-separated URL list a service of `user` connects with (shared/bus.py)."""
    scheme = "tls" if lab.tls else "nats"
    order = sorted(lab.hubs, key=lambda h: h.name != preferred)
    return ",".join(f"{scheme}://{user}:{password}@{h.address}:{lab.client_port}" for h in order)


def spread(lab: Lab, index: int) -> str:
    """The preferred hub node of the `index`-th GPU host: GPU hosts spread over the nodes."""
    return lab.hubs[index % len(lab.hubs)].name


def _quote(value: str) -> str:
    if any(c in value for c in '"\\\n'):
        raise LabError("a password or path must not contain quotes, backslashes or newlines")
    return f'"{value}"'


def auth_block(auth_conf: str, passwords: dict[str, str]) -> str:
    """deploy/nats/auth.conf with each `$NATS_<USER>_PASSWORD` replaced by that user's password."""
    def password(match: re.Match[str]) -> str:
        user = match.group(1).lower()
        if user not in passwords:
            raise LabError(f"auth.conf names user {user!r}, which this lab has no password for")
        return _quote(passwords[user])

    return re.sub(r"\$NATS_([A-Z]+)_PASSWORD", password, auth_conf)


def node_config(lab: Lab, node: str, passwords: dict[str, str], auth_conf: str,
                cert: str | None = None, key: str | None = None, ca: str | None = None) -> str:
    """What a hub node adds to the embedded server's config (shared/embedded_nats.py writes the
    listen address, payload limit and JetStream store itself)."""
    me = lab.hub(node)
    lines = [f"server_name: {_quote(me.name)}",
             f"http: \"0.0.0.0:{lab.monitor_port}\"",
             f"ping_interval: \"{lab.ping_interval_s}s\"",
             f"ping_max: {lab.ping_max}",
             "write_deadline: \"5s\""]
    tls = ""
    if lab.tls:
        if cert is None or key is None or ca is None:
            raise LabError(f"hub node {node}: TLS is on but its certificate, key or the CA is missing")
        tls = f"tls {{ cert_file: {_quote(cert)}, key_file: {_quote(key)}, ca_file: {_quote(ca)}, timeout: 5 }}"
        lines.append(tls)
    if len(lab.hubs) > 1:
        scheme = "tls" if lab.tls else "nats"
        route_pw = passwords[ROUTE_USER]
        routes = ", ".join(f"\"{scheme}://{ROUTE_USER}:{route_pw}@{h.address}:{lab.cluster_port}\""
                           for h in lab.hubs if h.name != node)
        route_tls = tls.replace("tls {", "tls { verify: true, ", 1) if lab.tls else ""
        lines += ["cluster {",
                  "  name: aiub",
                  f"  listen: \"0.0.0.0:{lab.cluster_port}\"",
                  "  no_advertise: true",
                  f"  authorization {{ user: {ROUTE_USER}, password: {_quote(route_pw)}, timeout: 2 }}",
                  f"  routes: [{routes}]",
                  f"  {route_tls}" if route_tls else "",
                  "}"]
    lines.append(auth_block(auth_conf, passwords))
    return "\n".join(line for line in lines if line) + "\n"
