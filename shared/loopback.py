"""Whether an address, a request's Host or an interface to listen on is this machine's own
loopback: a service without a key (either service's open mode) is confined to it."""

from __future__ import annotations

import ipaddress
import socket

from starlette.requests import Request

from shared.errors import Forbidden


def is_loopback_address(address: str) -> bool:
    """Whether an IP address (as text) is a loopback one; names and garbage are not."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def is_loopback_name(host: str | None) -> bool:
    """Whether a request was addressed (its Host header, without the port) to this machine by
    a loopback name: `localhost`, a name under `.localhost` (RFC 6761: never sent to DNS) or
    a loopback address. A web page that rebinds its own name to 127.0.0.1 (DNS rebinding)
    still sends its own name, so its requests are told apart from the user's."""
    if not host:
        return False
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost") or is_loopback_address(name)


def is_loopback_host(host: str) -> bool:
    """Whether every address a listening host name or address stands for is loopback
    (`0.0.0.0`, `::` and the empty name mean every interface: not loopback)."""
    if not host:
        return False
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return is_loopback_address(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(is_loopback_address(str(info[4][0])) for info in infos)


def require_this_machine(request: Request, unkeyed: str, how_to_add_a_key: str) -> None:
    """403 unless a request comes from a loopback client and is addressed to a loopback name:
    what a service without a key answers. `unkeyed` says which service has no key ("no API
    key is configured, so this API"), `how_to_add_a_key` ends each refusal."""
    client = request.client
    if client is None or not is_loopback_address(client.host):
        raise Forbidden(f"{unkeyed} answers loopback clients only; {how_to_add_a_key}")
    if not is_loopback_name(request.url.hostname):
        raise Forbidden(
            f"{unkeyed} answers requests addressed to localhost or a loopback address only, "
            f"not to '{request.url.hostname}' (a web page can point its own name at this "
            f"machine); {how_to_add_a_key}"
        )
