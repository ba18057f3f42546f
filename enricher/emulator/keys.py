"""Strict validation of request bodies, and the normalized form of each key.

A key's normalized form is what the emulator's answers are computed from, so it must agree
with `enricher.api.protocol.match_key`: hashes and domains lower case (domains without a trailing
dot), IPv6 compressed. Everything a strict server would refuse raises `InvalidRequest` with a
message naming the cause and the position, e.g. "invalid addressType 'ipv4' at requestData[3]".
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import orjson

from ..ioc import Endpoint

__all__ = [
    "HASH_LENGTHS",
    "InvalidRequest",
    "normalize_key",
    "normalize_keys",
    "parse_body",
]

#: Hash field name -> hex length. The field of a normalized hash follows from its length.
HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_HEX = re.compile(r"[0-9a-fA-F]+")
_SPACE = re.compile(r"\s")
# A canonical dotted quad (no leading zeros, as ipaddress insists): the common case, checked
# without building an IPv4Address.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_ADDRESS_TYPES = ("Ipv4", "Ipv6")
_MAX_DOMAIN = 255


class InvalidRequest(ValueError):
    """The body is not something the API accepts; the message is the 400's `error`."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_body(body: bytes) -> list[Any]:
    """The `requestData` list of a request body, each item checked to hold a `requestKey`.

    Returns the `requestKey` objects, still unvalidated (see `normalize_key`).
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"body is not JSON ({len(body)} bytes)") from None
    if not isinstance(doc, dict):
        raise InvalidRequest(f"body must be a JSON object, got a JSON {type(doc).__name__}")
    data = doc.get("requestData")
    if not isinstance(data, list):
        if data is None:
            raise InvalidRequest("body has no requestData list")
        raise InvalidRequest("requestData must be a list")
    extra = [name for name in doc if name != "requestData"]
    if extra:
        raise InvalidRequest(f"unknown field {_show(extra[0])} in the body")
    keys = []
    for i, item in enumerate(data):
        key = item.get("requestKey") if isinstance(item, dict) else None
        if not isinstance(key, dict):
            raise InvalidRequest(f"requestData[{i}] must be an object with a requestKey object")
        if len(item) != 1:
            other = next(name for name in item if name != "requestKey")
            raise InvalidRequest(f"unknown field {_show(other)} at requestData[{i}]")
        keys.append(key)
    return keys


def normalize_key(endpoint: Endpoint, key: Any, i: int = 0, *, accept_sha256: bool = True) -> str:
    """Validate one `requestKey` object for `endpoint` and return its normalized key.

    `i` is the key's position, for the error message.
    """
    if not isinstance(key, dict):
        raise InvalidRequest(f"requestKey must be an object at requestData[{i}]")
    if endpoint is Endpoint.FILE:
        return _file_key(key, i, accept_sha256)
    if endpoint is Endpoint.DOMAIN:
        return _domain_key(key, i)
    return _ip_key(key, i)


def normalize_keys(endpoint: Endpoint, keys: list[Any], *, accept_sha256: bool = True) -> list[str]:
    """`normalize_key` for every `requestKey` of a request, in order."""
    if endpoint is Endpoint.FILE:
        return [_file_key(key, i, accept_sha256) for i, key in enumerate(keys)]
    one = _domain_key if endpoint is Endpoint.DOMAIN else _ip_key
    return [one(key, i) for i, key in enumerate(keys)]


def _file_key(key: dict[str, Any], i: int, accept_sha256: bool) -> str:
    found: str | None = None
    for name, value in key.items():
        length = HASH_LENGTHS.get(name)
        if length is None or (name == "sha256" and not accept_sha256):
            why = " (sha256 is not accepted)" if name == "sha256" else ""
            raise InvalidRequest(f"unknown key name {_show(name)} at requestData[{i}]{why}")
        # A client may send back the echo form, where the unasked hash fields are null.
        if value is None:
            continue
        if found is not None:
            raise InvalidRequest(f"more than one hash at requestData[{i}]")
        if not (isinstance(value, str) and len(value) == length and _HEX.fullmatch(value)):
            raise InvalidRequest(
                f"malformed {name} {_show(value)} at requestData[{i}]: expected {length} hex digits"
            )
        found = value
    if found is None:
        raise InvalidRequest(f"no md5, sha1 or sha256 at requestData[{i}]")
    return found.lower()


def _domain_key(key: dict[str, Any], i: int) -> str:
    for name in key:
        if name != "domain":
            raise InvalidRequest(f"unknown key name {_show(name)} at requestData[{i}]")
    value = key.get("domain")
    if not isinstance(value, str):
        raise InvalidRequest(f"domain must be a string at requestData[{i}]")
    normalized = value.lower().rstrip(".")
    if not normalized or len(normalized) > _MAX_DOMAIN or _SPACE.search(normalized):
        raise InvalidRequest(f"malformed domain {_show(value)} at requestData[{i}]")
    return normalized


def _ip_key(key: dict[str, Any], i: int) -> str:
    for name in key:
        if name != "ipAddress" and name != "addressType":
            raise InvalidRequest(f"unknown key name {_show(name)} at requestData[{i}]")
    address_type = key.get("addressType")
    if address_type not in _ADDRESS_TYPES:
        raise InvalidRequest(f"invalid addressType {_show(address_type)} at requestData[{i}]")
    address = key.get("ipAddress")
    if not isinstance(address, str):
        raise InvalidRequest(f"ipAddress must be a string at requestData[{i}]")
    if address_type == "Ipv4" and _IPV4.fullmatch(address):
        return address
    try:
        if address_type == "Ipv4":
            return str(ipaddress.IPv4Address(address))
        return ipaddress.IPv6Address(address).compressed
    except ValueError:
        raise InvalidRequest(
            f"ipAddress {_show(address)} is not an {address_type} address at requestData[{i}]"
        ) from None
