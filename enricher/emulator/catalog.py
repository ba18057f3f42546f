"""What the emulator's answers are made of: classification weights, providers, products.

Plain tables, read by `answers` once at import. The weights make most keys indifferent,
unknown or no_type_found, some whitelisted and about 5% malicious; `sinkholed` and
`unresolved` exist for domains only, as the API documents.
"""

from __future__ import annotations

from typing import Any

from ..ioc import Endpoint

__all__ = [
    "CP_IDS",
    "FAMILY",
    "MALICIOUS_TYPES",
    "NO_SCORE",
    "PRODUCTS",
    "PROVIDERS",
    "TYPE_WEIGHTS",
]

MALICIOUS_TYPES = frozenset(
    {
        "malware",
        "ransomware",
        "maltool",
        "hacktool",
        "unwanted",
        "blacklist",
        "av_detected",
        "suspicious",
    }
)

#: Per endpoint, classification -> weight out of 10,000.
TYPE_WEIGHTS: dict[Endpoint, dict[str, int]] = {
    Endpoint.FILE: {
        "indifferent": 3000,
        "unknown": 2800,
        "no_type_found": 1800,
        "whitelist": 1900,
        "malware": 150,
        "unwanted": 100,
        "suspicious": 60,
        "hacktool": 50,
        "blacklist": 40,
        "av_detected": 40,
        "ransomware": 30,
        "maltool": 30,
    },
    Endpoint.DOMAIN: {
        "indifferent": 3500,
        "unknown": 2500,
        "no_type_found": 1000,
        "whitelist": 1800,
        "unresolved": 600,
        "sinkholed": 100,
        "malware": 120,
        "blacklist": 100,
        "suspicious": 100,
        "unwanted": 80,
        "hacktool": 30,
        "av_detected": 30,
        "ransomware": 20,
        "maltool": 20,
    },
    Endpoint.IP: {
        "indifferent": 4000,
        "unknown": 3000,
        "no_type_found": 1300,
        "whitelist": 1200,
        "blacklist": 150,
        "malware": 100,
        "suspicious": 100,
        "unwanted": 50,
        "hacktool": 30,
        "av_detected": 30,
        "ransomware": 20,
        "maltool": 20,
    },
}

#: cpType -> (cpId, source name). VIRUS_TOTAL=2 and TOKEN=1 as in the tutorial's examples.
CP_IDS: dict[str, tuple[int, str]] = {
    "TOKEN": (1, "Example"),
    "VIRUS_TOTAL": (2, "VirusTotal"),
    "REVERSING_LABS": (3, "ReversingLabs"),
    "OPSWAT": (4, "OPSWAT"),
    "DNS_RESOLVER": (5, "DnsResolver"),
    "STIX_TAXII": (6, "StixTaxii"),
    "SAGE_GLOBAL": (7, "Cybereason"),
    "SAGE_API": (8, "CybereasonApi"),
    "CUSTOMER_CLASSIFICATION": (9, "Customer"),
    "AV_REPORTED": (10, "AvReported"),
    "ISIGHT": (11, "iSight"),
}


def _spread(weights: dict[str, int]) -> tuple[str, ...]:
    """A tuple in which each name appears `weight` times: index it with a uniform draw."""
    return tuple(name for name, n in weights.items() for _ in range(n))


#: Which providers answer for each verdict family (a weighted list, indexed by a draw).
PROVIDERS: dict[str, tuple[str, ...]] = {
    "malicious": _spread(
        {
            "VIRUS_TOTAL": 8,
            "REVERSING_LABS": 4,
            "OPSWAT": 2,
            "AV_REPORTED": 2,
            "ISIGHT": 2,
            "STIX_TAXII": 1,
            "SAGE_GLOBAL": 1,
        }
    ),
    "whitelist": _spread(
        {"SAGE_GLOBAL": 7, "VIRUS_TOTAL": 5, "REVERSING_LABS": 4, "CUSTOMER_CLASSIFICATION": 2}
    ),
    "neutral": _spread({"VIRUS_TOTAL": 10, "TOKEN": 4, "SAGE_API": 4, "REVERSING_LABS": 2}),
    "sinkholed": _spread({"DNS_RESOLVER": 7, "STIX_TAXII": 3}),
    "unresolved": ("DNS_RESOLVER",),
}
#: classification -> verdict family.
FAMILY = {name: "malicious" for name in MALICIOUS_TYPES} | {
    "whitelist": "whitelist",
    "indifferent": "neutral",
    "unknown": "neutral",
    "no_type_found": "neutral",
    "sinkholed": "sinkholed",
    "unresolved": "unresolved",
}
#: Classifications without an engine score (classificationScore and typeScore are -1).
NO_SCORE = frozenset({"indifferent", "unknown", "no_type_found", "unresolved"})

_SIGNED_OK = "SIGNATURE_VERIFICATION_STATUS_SUCCESS"
_NOT_SIGNED = "SIGNATURE_VERIFICATION_STATUS_NOT_SIGNED"
_UNTRUSTED = "SIGNATURE_VERIFICATION_STATUS_UNTRUSTED_ROOT"


def _product(kind: str, title: str, maker: str, status: str) -> dict[str, Any]:
    signed = status != _NOT_SIGNED
    return {
        "productType": kind,
        "type": kind,
        "title": title,
        "manufacturer": maker,
        "signatureVerified": status == _SIGNED_OK,
        "externalSignatureVerificationStatus": status,
        "signed": signed,
    }


_SIGNED_PRODUCTS = (
    _product("SHELL", "Power Shell", "Microsoft Windows", _SIGNED_OK),
    _product("SHELL", "Windows Command Processor", "Microsoft Windows", _SIGNED_OK),
    _product("BROWSER", "Google Chrome", "Google LLC", _SIGNED_OK),
    _product("BROWSER", "Firefox", "Mozilla Corporation", _SIGNED_OK),
    _product("OFFICE", "Microsoft Word", "Microsoft Corporation", _SIGNED_OK),
    _product("PDF_READER", "Adobe Acrobat Reader", "Adobe Inc.", _SIGNED_OK),
    _product("COMMUNICATION", "Zoom", "Zoom Video Communications, Inc.", _SIGNED_OK),
    _product("SYSTEM", "Windows Explorer", "Microsoft Windows", _SIGNED_OK),
)
_OTHER_PRODUCTS = (
    _product("UNKNOWN", "", "", _NOT_SIGNED),
    _product("UNKNOWN", "setup", "", _NOT_SIGNED),
    _product("APPLICATION", "7-Zip", "Igor Pavlov", _NOT_SIGNED),
    _product("APPLICATION", "Notepad++", "Notepad++ Team", _UNTRUSTED),
    _product("REMOTE_ADMIN", "TeamViewer", "TeamViewer GmbH", _SIGNED_OK),
)
_MALICIOUS_PRODUCTS = (
    _product("UNKNOWN", "", "", _NOT_SIGNED),
    _product("UNKNOWN", "svchost", "Microsoft Corporation", _NOT_SIGNED),
    _product("UNKNOWN", "invoice", "", _UNTRUSTED),
)

#: The products a file of each verdict family may be: signed software is whitelisted, malware
#: is mostly unsigned, the rest is a mix.
PRODUCTS: dict[str, tuple[dict[str, Any], ...]] = {
    "whitelist": _SIGNED_PRODUCTS,
    "malicious": _MALICIOUS_PRODUCTS,
    "neutral": _OTHER_PRODUCTS + _SIGNED_PRODUCTS,
}
