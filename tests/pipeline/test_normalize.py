"""normalize() and refang(): the rules by example, then properties over generated input."""

from __future__ import annotations

import ipaddress
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.ioc import IocType
from enricher.pipeline.normalize import MAX_LENGTH, _normalize_slow, normalize, refang

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LONGEST_DOMAIN = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
NOT_IOC = "not a hash, domain, IP or URL"
BAD_HEX = "hex string of unsupported length (md5, sha1, sha256 have 32, 40, 64)"

ACCEPTED = [
    # hashes, any case, surrounding whitespace ignored
    (MD5, IocType.MD5, MD5),
    (MD5.upper(), IocType.MD5, MD5),
    (f" \t{SHA1.upper()}  ", IocType.SHA1, SHA1),
    (SHA256, IocType.SHA256, SHA256),
    ("0" * 32, IocType.MD5, "0" * 32),
    # domains
    ("example.com", IocType.DOMAIN, "example.com"),
    ("Mail.Example.COM.", IocType.DOMAIN, "mail.example.com"),
    ("a.b", IocType.DOMAIN, "a.b"),
    ("my_host.evil-site.ru", IocType.DOMAIN, "my_host.evil-site.ru"),
    ("_dmarc.example.com", IocType.DOMAIN, "_dmarc.example.com"),
    ("123.example.com", IocType.DOMAIN, "123.example.com"),
    ("example.com1", IocType.DOMAIN, "example.com1"),
    ("a." + "b" * 63, IocType.DOMAIN, "a." + "b" * 63),
    (LONGEST_DOMAIN, IocType.DOMAIN, LONGEST_DOMAIN),
    (LONGEST_DOMAIN.upper() + ".", IocType.DOMAIN, LONGEST_DOMAIN),
    # internationalized domains, to A-labels (UTS 46 mapping)
    ("bücher.de", IocType.DOMAIN, "xn--bcher-kva.de"),
    ("BÜCHER.DE", IocType.DOMAIN, "xn--bcher-kva.de"),
    ("XN--BCHER-KVA.de", IocType.DOMAIN, "xn--bcher-kva.de"),
    ("пример.рф", IocType.DOMAIN, "xn--e1afmkfd.xn--p1ai"),
    ("例子。中国", IocType.DOMAIN, "xn--fsqu00a.xn--fiqs8s"),  # ideographic full stop
    ("ＥＸＡＭＰＬＥ．ｃｏｍ", IocType.DOMAIN, "example.com"),  # full-width forms
    ("faß.de", IocType.DOMAIN, "xn--fa-hia.de"),  # nontransitional: ß is kept
    ("my_host.bücher.de", IocType.DOMAIN, "my_host.xn--bcher-kva.de"),
    ("\u212aelvin.com", IocType.DOMAIN, "kelvin.com"),  # Kelvin sign maps to k
    # IPv4
    ("1.2.3.4", IocType.IPV4, "1.2.3.4"),
    ("0.0.0.0", IocType.IPV4, "0.0.0.0"),
    ("255.255.255.255", IocType.IPV4, "255.255.255.255"),
    ("10.0.0.1", IocType.IPV4, "10.0.0.1"),
    # IPv6, compressed and lower-cased
    ("2001:0DB8:0000:0000:0000:0000:0000:0001", IocType.IPV6, "2001:db8::1"),
    ("2001:db8::1", IocType.IPV6, "2001:db8::1"),
    ("::1", IocType.IPV6, "::1"),
    ("::", IocType.IPV6, "::"),
    ("[2001:db8::1]", IocType.IPV6, "2001:db8::1"),
    ("[2001:db8::1]:443", IocType.IPV6, "2001:db8::1"),
    # an IPv4-mapped address is the IPv4 address it maps, in any spelling
    ("::ffff:1.2.3.4", IocType.IPV4, "1.2.3.4"),
    ("::FFFF:102:304", IocType.IPV4, "1.2.3.4"),
    ("0:0:0:0:0:ffff:0102:0304", IocType.IPV4, "1.2.3.4"),
    ("[::ffff:10.0.0.1]:443", IocType.IPV4, "10.0.0.1"),
    ("http://[::ffff:10.0.0.1]/x", IocType.IPV4, "10.0.0.1"),
    # not mapped: IPv4-compatible (deprecated) and IPv4-translated (NAT64) stay IPv6
    ("::1.2.3.4", IocType.IPV6, "::102:304"),
    ("64:ff9b::1.2.3.4", IocType.IPV6, "64:ff9b::102:304"),
    # URLs yield their host
    ("http://example.com", IocType.DOMAIN, "example.com"),
    ("https://Example.com/path?q=1#frag", IocType.DOMAIN, "example.com"),
    ("ftp://user:pw@files.example.org:2121/pub", IocType.DOMAIN, "files.example.org"),
    ("ssh://git@github.com", IocType.DOMAIN, "github.com"),
    ("HTTP://EXAMPLE.COM/", IocType.DOMAIN, "example.com"),
    ("http://example.com:/", IocType.DOMAIN, "example.com"),
    ("http://example.com?x", IocType.DOMAIN, "example.com"),
    ("http://example.com\\path", IocType.DOMAIN, "example.com"),
    ("http://1.2.3.4:8080/x", IocType.IPV4, "1.2.3.4"),
    ("http://[2001:db8::1]:8080/x", IocType.IPV6, "2001:db8::1"),
    ("https://[2001:DB8::1]/", IocType.IPV6, "2001:db8::1"),
    ("http://bücher.de/", IocType.DOMAIN, "xn--bcher-kva.de"),
    ("evil.com/payload.exe", IocType.DOMAIN, "evil.com"),
    ("example.com/2024", IocType.DOMAIN, "example.com"),
    # host:port and e-mail addresses
    ("example.com:443", IocType.DOMAIN, "example.com"),
    ("1.2.3.4:8080", IocType.IPV4, "1.2.3.4"),
    ("1.2.3.4:65535", IocType.IPV4, "1.2.3.4"),
    ("user@example.com", IocType.DOMAIN, "example.com"),
    ("first.last+tag@Mail.Example.com", IocType.DOMAIN, "mail.example.com"),
    ("mailto:user@example.com", IocType.DOMAIN, "example.com"),
    # defanged
    ("example[.]com", IocType.DOMAIN, "example.com"),
    ("example(.)com", IocType.DOMAIN, "example.com"),
    ("example{.}com", IocType.DOMAIN, "example.com"),
    ("example[dot]com", IocType.DOMAIN, "example.com"),
    ("example(DOT)com", IocType.DOMAIN, "example.com"),
    ("example [dot] com", IocType.DOMAIN, "example.com"),
    ("example[.com", IocType.DOMAIN, "example.com"),
    ("example.]com", IocType.DOMAIN, "example.com"),
    ("example\\.com", IocType.DOMAIN, "example.com"),
    ("hxxp://evil[.]com/a", IocType.DOMAIN, "evil.com"),
    ("hXXps[:]//evil[.]com", IocType.DOMAIN, "evil.com"),
    ("hxxp[://]evil[.]com", IocType.DOMAIN, "evil.com"),
    ("fxp://files[.]example[.]org", IocType.DOMAIN, "files.example.org"),
    ("1.2.3[.]4", IocType.IPV4, "1.2.3.4"),
    ("1[.]2[.]3[.]4:80", IocType.IPV4, "1.2.3.4"),
    ("2001:db8[:]:1", IocType.IPV6, "2001:db8::1"),
    ("user[@]example[.]com", IocType.DOMAIN, "example.com"),
    ("user [at] example [dot] com", IocType.DOMAIN, "example.com"),
    ("hxxp://bücher[.]de", IocType.DOMAIN, "xn--bcher-kva.de"),
    ("evil[[.]]net", IocType.DOMAIN, "evil.net"),
    ("evil[.]]net", IocType.DOMAIN, "evil.net"),
    ("evil[[.]net", IocType.DOMAIN, "evil.net"),
    ("evil<.>net", IocType.DOMAIN, "evil.net"),
    # characters that do not show are dropped, wherever they hide
    ("b\u200bad.example.com", IocType.DOMAIN, "bad.example.com"),
    ("b\u00adad.co.uk", IocType.DOMAIN, "bad.co.uk"),
    ("x\u200c.bad.org", IocType.DOMAIN, "x.bad.org"),
    ("192.0.2\u200b.7", IocType.IPV4, "192.0.2.7"),
    (MD5[:10] + "\u2060" + MD5[10:], IocType.MD5, MD5),
    # a wildcard name stands for the name under it
    ("*.example.com", IocType.DOMAIN, "example.com"),
    ("*.*.mail.example.com", IocType.DOMAIN, "mail.example.com"),
    ("http://*.example.com/x", IocType.DOMAIN, "example.com"),
    # a prefix length that makes no range: one host, an interface's address, a port
    ("192.0.2.7/32", IocType.IPV4, "192.0.2.7"),
    ("10.1.2.3/24", IocType.IPV4, "10.1.2.3"),
    ("192.0.2.7/443", IocType.IPV4, "192.0.2.7"),
    ("2001:db8::7/128", IocType.IPV6, "2001:db8::7"),
    ("2001:db8::7/64", IocType.IPV6, "2001:db8::7"),
]

REJECTED = [
    ("", "empty"),
    ("   \t ", "empty"),
    ("[.]", NOT_IOC),
    ("x" * (MAX_LENGTH + 1), "too long"),
    # hashes of other lengths
    (MD5[:-1], BAD_HEX),
    (MD5 + "0", BAD_HEX),
    ("a" * 128, BAD_HEX),  # sha512
    ("3232235777", BAD_HEX),  # an IPv4 address as an integer is no address here
    # not IOCs at all
    ("hello world", NOT_IOC),
    ("/tmp/evil.exe", NOT_IOC),
    ("C:\\Windows\\system32", NOT_IOC),
    ("example.com:99999", NOT_IOC),
    ("example.com:http", NOT_IOC),
    ("a\x00b", NOT_IOC),
    # domains
    ("localhost", "single-label name (no dot)"),
    ("foo", "single-label name (no dot)"),
    ("example.com..", "empty domain label"),
    (".example.com", "empty domain label"),
    ("a..b", "empty domain label"),
    ("a" * 64 + ".com", "domain label longer than 63 characters"),
    (LONGEST_DOMAIN + "b", "domain longer than 253 characters"),
    (".".join(["ü" * 39] * 6) + ".de", "domain longer than 253 characters"),  # once A-labels
    ("-evil.com", "domain label starts or ends with a hyphen"),
    ("evil-.com", "domain label starts or ends with a hyphen"),
    ("example.-com", "domain label starts or ends with a hyphen"),
    ("*.", NOT_IOC),
    ("exa mple.com", "invalid character in domain"),
    ("a\x00b.com", "invalid character in domain"),
    ("example.c_m", "invalid character in domain"),
    ("example.123", "all-numeric top-level label"),
    ("0x7f.0.0.1", "all-numeric top-level label"),
    ("xn--zz.com", "invalid internationalized domain name"),
    ("xn--.com", "invalid internationalized domain name"),
    ("xn---bbk.com", "invalid internationalized domain name"),  # not the canonical A-label
    ("a\u2028b.com", "invalid internationalized domain name"),  # disallowed code point
    ("\ud800.com", "invalid internationalized domain name"),  # lone surrogate
    # IPv4: strict dotted quad only
    ("1.2.3", "invalid IPv4 address"),
    ("1.2.3.4.5", "invalid IPv4 address"),
    ("1.2.3.4.", "invalid IPv4 address"),
    ("256.1.1.1", "invalid IPv4 address"),
    ("01.2.3.4", "invalid IPv4 address"),
    ("1.2.3.04", "invalid IPv4 address"),
    ("1..2.3", "invalid IPv4 address"),
    ("1.2.3.0/24", "network range (CIDR), not a single address"),
    ("0.0.0.0/0", "network range (CIDR), not a single address"),
    ("2001:db8::/32", "network range (CIDR), not a single address"),
    ("2001:db8::100/120", "network range (CIDR), not a single address"),
    # IPv6
    ("2001:db8:::1", "invalid IPv6 address"),
    ("1:2:3:4:5:6:7:8:9", "invalid IPv6 address"),
    ("::ffff:01.2.3.4", "invalid IPv6 address"),
    ("[1.2.3.4]", "invalid IPv6 address"),
    ("fe80::1%eth0", "IPv6 zone index not supported"),
    ("http://[fe80::1%25eth0]/", "IPv6 zone index not supported"),
    ("[2001:db8::1", "unclosed '[' in address"),
    # URLs
    ("http://", "URL without a host"),
    ("http:///path", "URL without a host"),
    ("http://user@/", "URL without a host"),
    ("http://example.com:80x/", "invalid port"),
    ("http://example.com:65536/", "invalid port"),
    ("http://[2001:db8::1]x/", "invalid port"),
    ("http://2001:db8::1/", "IPv6 address in a URL must be in brackets"),
    ("http://localhost:8080/", "single-label name (no dot)"),
    ("http://999.1.1.1/", "invalid IPv4 address"),
]


@pytest.mark.parametrize(("text", "ioc_type", "value"), ACCEPTED)
def test_accepted(text: str, ioc_type: IocType, value: str) -> None:
    assert normalize(text) == (ioc_type, value)
    assert normalize(value) == (ioc_type, value)


@pytest.mark.parametrize(("text", "reason"), REJECTED)
def test_rejected(text: str, reason: str) -> None:
    assert normalize(text) == (None, reason)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example[.]com", "example.com"),
        ("hxxps[:]//a(dot)b{.}c/x", "https://a.b.c/x"),
        ("HXXP://a[.]b", "http://a.b"),
        ("fxp://a[.]b", "ftp://a.b"),
        ("a [at] b [dot] c", "a@b.c"),
        ("a[/]b", "a/b"),
        # the words "dot" and "at" count only in brackets; hxxp only as a scheme
        ("the dot com at noon", "the dot com at noon"),
        ("hxxp.example.com", "hxxp.example.com"),
        ("[2001:db8::1]:80", "[2001:db8::1]:80"),
        ("", ""),
    ],
)
def test_refang(text: str, expected: str) -> None:
    assert refang(text) == expected


def test_the_length_limit_applies_to_the_raw_text() -> None:
    padded = " " * (MAX_LENGTH - len("example.com")) + "example.com"
    assert normalize(padded) == (IocType.DOMAIN, "example.com")
    assert normalize(" " + padded) == (None, "too long")


def test_huge_and_long_garbage_is_rejected_quickly() -> None:
    n = MAX_LENGTH
    garbage = [
        "x" * (10 * 1024 * 1024),
        "a" * n,
        ("a." * n)[: n - 1] + "!",
        ("1." * n)[:n],
        ("[." * n)[:n],
        ("a" * 63 + ".") * (n // 64),
        "-" * n,
        ":" * n,
        "é" * n,
        "\x00" * n,
    ]
    for text in garbage:
        start = time.perf_counter()
        result = normalize(text)
        # Linear work on 2 KB is well under a millisecond; a quadratic regex would take seconds.
        assert time.perf_counter() - start < 0.25, text[:20]
        assert result[0] is None, text[:20]


# --- properties ---

# Pieces that combine into IOC-like text: valid IOCs, near misses, and edge characters.
PIECES = [
    *"aZz09_-.:/@[]%\\ ",
    "255",
    "01",
    "[.]",
    "(dot)",
    "[:]",
    "hxxp://",
    "http://",
    "xn--",
    "ü",
    "ß",
    "。",
    "\u212a",
    "İ",
    "\u200d",
    "\x00",
    "\ud800",
    "ff",
    "::",
    "example",
    "com",
    MD5,
]
ioc_like = st.lists(st.sampled_from(PIECES), max_size=14).map("".join)
any_text = st.text(st.characters(exclude_categories=()))  # surrogates too
long_text = st.tuples(st.text(min_size=1, max_size=8), st.integers(1, 1200)).map(
    lambda t: t[0] * t[1]
)


def check_result(text: str) -> None:
    ioc_type, value = normalize(text)
    assert isinstance(value, str)
    if ioc_type is None:
        assert value  # a reason
    else:
        assert normalize(value) == (ioc_type, value)
        assert value.isascii()


@settings(max_examples=300)
@given(st.one_of(st.text(), any_text, long_text))
def test_never_raises_and_is_idempotent_on_any_text(text: str) -> None:
    check_result(text)


@settings(max_examples=1000)
@given(ioc_like)
def test_never_raises_and_is_idempotent_on_ioc_like_text(text: str) -> None:
    check_result(text)


@settings(max_examples=1000)
@given(st.one_of(ioc_like, any_text))
def test_fast_path_agrees_with_the_rules(text: str) -> None:
    # normalize() only adds shortcuts to _normalize_slow(), which states the rules.
    assert normalize(text) == _normalize_slow(text.strip())


def random_case(data: st.DataObject, text: str) -> str:
    flips = data.draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if f else c for c, f in zip(text, flips, strict=True))


@st.composite
def hashes(draw: st.DrawFn) -> tuple[IocType, str]:
    ioc_type, size = draw(
        st.sampled_from([(IocType.MD5, 16), (IocType.SHA1, 20), (IocType.SHA256, 32)])
    )
    return ioc_type, draw(st.binary(min_size=size, max_size=size)).hex()


@given(hashes(), st.data())
def test_hashes_are_accepted_in_lower_case(ioc: tuple[IocType, str], data: st.DataObject) -> None:
    assert normalize(random_case(data, ioc[1])) == ioc


@given(st.ip_addresses(v=4))
def test_ipv4_addresses_are_accepted(address: ipaddress.IPv4Address) -> None:
    assert normalize(str(address)) == (IocType.IPV4, str(address))


@given(st.ip_addresses(v=6), st.sampled_from(["compressed", "exploded"]), st.booleans())
def test_ipv6_addresses_are_compressed(
    address: ipaddress.IPv6Address, form: str, upper: bool
) -> None:
    text = getattr(address, form)
    mapped = address.ipv4_mapped
    expected = (IocType.IPV6, address.compressed) if mapped is None else (IocType.IPV4, str(mapped))
    assert normalize(text.upper() if upper else text) == expected


@pytest.mark.parametrize(
    "text",
    ["::1.2.3.4", "64:ff9b::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "::ffff:0:1.2.3.4", "::0.0.0.1",
     "::01.2.3.4", "::ffff:256.1.1.1", "1:0:0:2::3", "1:0:1:0:1:0:1:0", "0:0:1::", "12345::",
     "1::2::3", ":::", "1:2:3:4:5:6:7:8:9", "1::\u0661"],
)  # fmt: skip
def test_ipv6_forms_read_as_ipaddress_reads_them(text: str) -> None:
    # the C parser reads addresses first; a dotted quad inside one, and what it refuses, are
    # ipaddress's to decide: the two agree on every form
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        assert normalize(text)[0] is None
        return
    mapped = address.ipv4_mapped
    expected = (IocType.IPV6, address.compressed) if mapped is None else (IocType.IPV4, str(mapped))
    assert normalize(text) == expected


label = st.from_regex(r"[a-z0-9_](?:[a-z0-9_-]{0,20}[a-z0-9_])?", fullmatch=True)
tld = st.from_regex(r"[a-z][a-z0-9]{0,9}", fullmatch=True)
domains = st.builds(lambda ls, t: ".".join([*ls, t]), st.lists(label, min_size=1, max_size=4), tld)


@given(domains, st.data())
def test_ldh_domains_are_accepted_in_lower_case(domain: str, data: st.DataObject) -> None:
    text = random_case(data, domain) + data.draw(st.sampled_from(["", "."]))
    assert normalize(text) == (IocType.DOMAIN, domain)


DOTS = ["[.]", "(.)", "{.}", "[dot]", "(dot)", " [dot] ", "[DOT]", "\\."]


@given(st.one_of(domains, st.ip_addresses(v=4).map(str)), st.data())
def test_defanged_forms_equal_the_clean_ones(clean: str, data: st.DataObject) -> None:
    parts = clean.split(".")
    defanged = parts[0] + "".join(data.draw(st.sampled_from([".", *DOTS])) + p for p in parts[1:])
    scheme = data.draw(st.sampled_from(["", "hxxp://", "hXXps[:]//", "hxxp[://]", "fxp://"]))
    expected = normalize(clean)
    assert expected[0] is not None
    assert refang(defanged) == clean
    assert normalize(scheme + defanged) == expected
    assert normalize(f"user[@]{defanged}") == expected


@given(st.one_of(domains, st.ip_addresses(v=4).map(str), st.ip_addresses(v=6)), st.data())
def test_urls_yield_their_host(host: str | ipaddress.IPv6Address, data: st.DataObject) -> None:
    expected = normalize(str(host))
    netloc = f"[{host}]" if isinstance(host, ipaddress.IPv6Address) else host
    userinfo = data.draw(st.sampled_from(["", "user@", "user:pw@"]))
    port = data.draw(st.sampled_from(["", ":80", ":65535"]))
    tail = data.draw(st.sampled_from(["", "/", "/a/b?c=d#e", "?q", "#f"]))
    scheme = data.draw(st.sampled_from(["http", "HTTPS", "ftp", "tcp"]))
    assert normalize(f"{scheme}://{userinfo}{netloc}{port}{tail}") == expected
