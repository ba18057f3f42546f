"""IOC kinds and the API endpoint each one is asked at."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ENDPOINT_OF", "Endpoint", "IocType"]


class IocType(StrEnum):
    """The kind of an indicator, as written in output records (`type`)."""

    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    DOMAIN = "domain"
    IPV4 = "ipv4"
    IPV6 = "ipv6"


class Endpoint(StrEnum):
    """The three batch endpoints, named as in the URL path."""

    FILE = "file_batch"
    DOMAIN = "domain_batch"
    IP = "ip_batch"


ENDPOINT_OF: dict[IocType, Endpoint] = {
    IocType.MD5: Endpoint.FILE,
    IocType.SHA1: Endpoint.FILE,
    IocType.SHA256: Endpoint.FILE,
    IocType.DOMAIN: Endpoint.DOMAIN,
    IocType.IPV4: Endpoint.IP,
    IocType.IPV6: Endpoint.IP,
}
