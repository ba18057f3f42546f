"""Text extraction: the IOCs in free text, by example, then properties over generated text."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from enricher.inputs.extract import extract, extract_lines
from enricher.inputs.suffixes import is_program_name
from enricher.pipeline.normalize import normalize, refang

SHA256 = "e4fd277eda17a946afd024f2d1478243e70df236282cbeeb36e764d492f74247"
SHA1 = "826420e65ec10f9c0cdf82faa8ced6390832f5e6"
MD5 = "8b1fdfac8fe38356708b4bb683ff7cca"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # defanged forms, refanged with normalize.refang
        ("C2 at evil[.]com and evil(.)net, evil{.}org", ["evil.com", "evil.net", "evil.org"]),
        ("evil[dot]com, evil(dot)ru, evil [.] io", ["evil.com", "evil.ru", "evil.io"]),
        ("1.2.3[.]4 and 5[.]6[.]7[.]8:443", ["1.2.3.4", "5.6.7.8"]),
        (
            "hxxp://evil[.]com/a and hXXps[:]//login.evil[.]com:8443/x",
            ["evil.com", "login.evil.com"],
        ),
        ("fxp://files.evil[.]ru/pub", ["files.evil.ru"]),
        ("mail bad[@]evil[.]com or bad[at]evil2[.]com", ["evil.com", "evil2.com"]),
        (r"escaped evil\.com", ["evil.com"]),
        # hosts of URLs and e-mail addresses; not the rest of a URL
        ("https://user:pw@www.evil.com:8080/path/update.php?q=1#f", ["www.evil.com"]),
        ("http://[2001:db8::1]:8080/gate", ["2001:db8::1"]),
        ("From: John Smith <john.smith@phish.co.uk>", ["phish.co.uk"]),
        ("GET /download/update.zip and /js/app.min.js", []),
        # file names are not domains
        ("dropped invoice.pdf, setup.exe, report.docx, kernel32.dll and settings.ini", []),
        ("readme.md, install.sh, payload.zip, run.py, archive.7z, The_One.one", []),
        ("but a defanged payload[.]zip or script[.]py is a host", ["payload.zip", "script.py"]),
        ("and so is the host of mail@notes.zip", ["notes.zip"]),
        ("cdn.payload.zip has three labels", ["cdn.payload.zip"]),
        ("corp.local, wpad.lan, host.internal, x.invalid are no public names", []),
        ("47.101.220.185.in-addr.arpa is a reverse lookup", []),
        # hashes: exactly 32, 40 or 64 hex digits between non-alphanumerics
        (f"md5 {MD5}, sha1={SHA1}; sha256:{SHA256}.", [MD5, SHA1, SHA256]),
        (f"{SHA256.upper()}", [SHA256]),
        (f"sha512 {SHA256}{SHA256} is none", []),
        (f"x{MD5} and {MD5}g and 0x{MD5} are none", []),
        (f"sample_{MD5} and {SHA256}.exe and /files/{SHA1}.bin", [MD5, SHA256, SHA1]),
        ("a 33-digit run 0123456789abcdef0123456789abcdef0 is none", []),
        ("a number 12345678901234567890123456789012 is none", []),
        (f"Hashes: SHA1={SHA1},MD5={MD5},IMPHASH=F34D5F2D4577ED6D9CEEC516C1F5A744", [SHA1, MD5]),
        ('"imphash": "f34d5f2d4577ed6d9ceec516c1f5a744", ja3=e7d705a3286e19ea42f587b344ee6865', []),
        # addresses
        ("from 10.0.0.5:49152 to 185.220.101.47.", ["10.0.0.5", "185.220.101.47"]),
        ("ranges 10.0.0.0/8 and 192.168.0.0/16 are no addresses", []),
        ("FileVersion: 1.0.0.1, ProductVersion=2.0.0.1, Chrome/121.0.0.0 Safari/537.36", []),
        ("squid HIER_DIRECT/203.0.113.5 and a path 1.2.3.4/download", ["203.0.113.5", "1.2.3.4"]),
        ("versions 1.2.3 and 1.2.3.4.5, octets 256.1.1.1 and 01.2.3.4 are none", []),
        ("times 10:00:00, MAC 00:1a:2b:3c:4d:5e, C++ std::vector are none", []),
        ("ranges 2001:db8::/32 and fe80::/10 are no addresses, fe80::1/x is", ["fe80::1"]),
        (
            "connect to 2001:db8::1: refused, to 64:ff9b::: too; fe80:::: is none",
            ["2001:db8::1", "64:ff9b::"],
        ),
        # internationalized names become A-labels
        ("пример.рф and bücher.de", ["xn--e1afmkfd.xn--p1ai", "xn--bcher-kva.de"]),
    ],
)
def test_extract(text: str, expected: list[str]) -> None:
    assert extract(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # one boundary rule for every kind: `_ % + -` at either end of a value are punctuation
        ("AsciiDoc +203.0.113[.]9+ and ++198.51.100.14++", ["203.0.113.9", "198.51.100.14"]),
        (
            "++c2-panel[.]cc|192.0.2[.]77++ ++192.0.2[.]78:8443++",
            ["c2-panel.cc", "192.0.2.77", "192.0.2.78"],
        ),
        (
            "_10.1.2.3_ -10.1.2.4- +drop.evil.com+ _drop2.evil.com_",
            ["10.1.2.3", "10.1.2.4", "drop.evil.com", "drop2.evil.com"],
        ),
        (f"+{MD5}+ _{SHA1}_ -{SHA256}-", [MD5, SHA1, SHA256]),
        ("+2001:db8::5+ _2001:db8::6_", ["2001:db8::5", "2001:db8::6"]),
        ("h=%3A2001:db8::7%2C and :0:1:0:1:0:1:0:1,", ["2001:db8::7", "0:1:0:1:0:1:0:1"]),
        ("ops+alerts@mail.evil.com", ["mail.evil.com"]),
        # percent-escaped separators
        (
            f"https://intel.example.net/search?filehash=sha256%3A{SHA256}&x=1",
            ["intel.example.net", SHA256],
        ),
        (
            "u=http%3A%2F%2Fdl.evil.com%2Fa.exe and billing%40evil-pay.com",
            ["dl.evil.com", "evil-pay.com"],
        ),
        # the host of a URL is a domain, whatever its suffix looks like
        (
            "http://fotos.pl/x, hxxp://a.ps/a/b, http://b.md/, hxxps[:]//docs.sh/run",
            ["fotos.pl", "a.ps", "b.md", "docs.sh"],
        ),
        ("JSON text: http:\\/\\/photos.pl\\/x", ["photos.pl"]),
        (
            "http://x.bit/r/z.php and hxxp://shop.bazar/gate, but a bare x.bit is none",
            ["x.bit", "shop.bazar"],
        ),
        ("internal http://intranet.corp.local/ and http://build.internal:8080/ are none", []),
        ("nor are http://x.and-stage/ or http://x.a1/, but http://x.xn--p1ai/ is", ["x.xn--p1ai"]),
        # a URL nested in another URL's path
        ("https://a[.]online/--/hXXps:/www[.]b.gov.it/path", ["a.online", "www.b.gov.it"]),
        (
            "https://redir.example.com/?to=https://c2.evil.com/x",
            ["redir.example.com", "c2.evil.com"],
        ),
        # a wildcard or template label gives the name it is under
        ("*.evil.com and server-{1,30}[.]evil[.]top", ["evil.com", "evil.top"]),
        (
            "<id>.c2.evil.net, .evil.org, node[0-9].evil.biz",
            ["c2.evil.net", "evil.org", "evil.biz"],
        ),
        ("*.co.uk is a public suffix alone", []),
        # file names with a file-like suffix and a version in them
        ("magnet:?xt=urn:btih:00&dn=utorrent.pro.v.3.5.5.multi.winall.cracked-f4cg.zip", []),
        ("poweriso.7.3.incl.serial-f4cg.zip and setup.2.1.zip", []),
        # paths and program names
        (r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\csc.exe", []),
        (r"%APPDATA%\Temp.NET\x.exe and C:/Users/a/Microsoft.NET", []),
        ("built on asp.net and ADO.NET, with System.IO and Microsoft.Office", []),
        (r"but \\files.evil.com\share is a UNC host", ["files.evil.com"]),
        ("and http://Microsoft.NET/x is a URL's host", ["microsoft.net"]),
        ("EVIL.COM and Evil.com are domains", ["evil.com", "evil.com"]),
        # IPv6 made of AsciiDoc terms and dates
        ("2015-05-26:: first seen\nC2 2:: the server\nbeef:: x", []),
        ("but [2001::] and http://[fe80::]/ are addresses", ["2001::", "fe80::"]),
    ],
)
def test_extract_wrapped_forms_misses_and_false_positives(text: str, expected: list[str]) -> None:
    assert extract(text) == expected


# The findings of a second, outside attack on the extractor, each with examples of our own.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a hash written as a file's name is the hash, whatever the extension
        (f"saved as {MD5}.zip, ({SHA1}.sh) and {MD5}.one", [MD5, SHA1, MD5]),
        (f"the dropper {SHA1}.com ran", [SHA1]),
        (
            f"but {MD5}.cdn.bad-host.net is a name, {SHA1}[.]com too",
            [f"{MD5}.cdn.bad-host.net", f"{SHA1}.com"],
        ),
        # Title Case names: a hyphen or `.Com` makes them hosts, not .NET namespaces
        (
            "Verify At Account-Verify.Com, Mail.Bad-Bank.Org Or Login.PayPal.Com Today",
            ["account-verify.com", "mail.bad-bank.org", "login.paypal.com"],
        ),
        (
            "Your Wallet At Ledger-Recovery.Support; Xn--Bcher-Kva.De",
            ["ledger-recovery.support", "xn--bcher-kva.de"],
        ),
        ("namespaces Microsoft.Office, System.Security and System.Net", []),
        # a slash after an address is a prefix only if it can be one and makes a range
        (
            "ASA outside:198.51.100.7/443 (198.51.100.7/443) in:10.9.8.7/51515 dns 192.0.2.8/53",
            ["198.51.100.7", "198.51.100.7", "10.9.8.7", "192.0.2.8"],
        ),
        (
            "hosts 198.51.100.50/32, 10.1.1.5/24 and 192.0.2.9/40; nets 198.51.100.0/24",
            ["198.51.100.50", "10.1.1.5", "192.0.2.9"],
        ),
        (
            "v6 host 2001:db8:5::1/128, iface 2001:db8:5::2/64, net 2001:db8:5::/48",
            ["2001:db8:5::1", "2001:db8:5::2"],
        ),
        # slash lists: each item is read
        (
            "C2: 192.0.2.10/192.0.2.11 and c2-a.bad.net/c2-b.bad.net, ns1.x.org/ns2.x.org",
            ["192.0.2.10", "192.0.2.11", "c2-a.bad.net", "c2-b.bad.net", "ns1.x.org", "ns2.x.org"],
        ),
        (
            "but http://host.bad.net/path/other.bad.org/x and bad.net/docs/x.org/y",
            ["host.bad.net", "bad.net"],
        ),
        # IPv6 after a key glued to it by a colon
        (
            "from:2001:db8:4::9 dst:2001:db8:4::a [IPv6:2001:db8:4::b] ip6:2001:db8:4::c",
            ["2001:db8:4::9", "2001:db8:4::a", "2001:db8:4::b", "2001:db8:4::c"],
        ),
        ("x2001:db8::1 and 0xdb8::1 are glued to a word", []),
        # e-mail addresses with an empty, wildcard, quoted or doubled user
        (
            'deny *@bad-mailer.net, @bad-mailer2.org, "@bad-mailer3.info", '
            '"jo.doe"@bad-mailer4.biz and ann@@bad-mailer5.ru',
            [
                "bad-mailer.net",
                "bad-mailer2.org",
                "bad-mailer3.info",
                "bad-mailer4.biz",
                "bad-mailer5.ru",
            ],
        ),
        # a leading `_` is part of a name; placeholders and variables give the name after them
        (
            "_domainkey.mail.bad-send.ru, _xmpp._tcp.bad-chat.com and v=spf1 include:_nb.bad.net",
            ["_domainkey.mail.bad-send.ru", "_xmpp._tcp.bad-chat.com", "_nb.bad.net"],
        ),
        (
            '"%s.c2-dga.net" "%04x.c2-dga.org" "%d.%d.c2-dga.info" "%u-%u.c2-dga.biz" '
            "%TMP%.c2-env.ru $sub.c2-var.net \\d+\\.c2-re\\.com",
            [
                "c2-dga.net",
                "c2-dga.org",
                "c2-dga.info",
                "c2-dga.biz",
                "c2-env.ru",
                "c2-var.net",
                "c2-re.com",
            ],
        ),
        ("%65vil.com is no name we can read", []),
        ("wrapped _wrap.bad.net:8080_ and %wrap2.bad.net:80%", ["wrap.bad.net", "wrap2.bad.net"]),
        # Markdown escapes are undone, never cut a name
        (
            "my\\_c2\\_node.bad.net, c2\\-edge.bad.org and bad\\[.\\]io",
            ["my_c2_node.bad.net", "c2-edge.bad.org", "bad.io"],
        ),
        # characters that do not show, and footnote marks
        (
            "c2\u200b-node.com, sof\u00adthost.co.uk, 198.51.100\u200c.20, \ufeffbad.info",
            ["c2-node.com", "softhost.co.uk", "198.51.100.20", "bad.info"],
        ),
        (f"{MD5[:9]}\u2060{MD5[9:]} is one hash", [MD5]),
        (
            "see c2.footnote-host.com\u00b9 and 198.51.100.30\u00b2, ref\u2074",
            ["c2.footnote-host.com", "198.51.100.30"],
        ),
        # AsciiDoc terms with a time, code, and EUI-64s are no IPv6
        ("10:30:: first beacon\n2024-05-01 23:59:: exfil", []),
        ("Face::Cafe, B::A, [Int]::Parse and EUI-64 02:1b:2c:ff:fe:3d:4e:5f", []),
        ("but [a::b], 10:30[:]: and 100[:]: are addresses", ["a::b", "10:30::", "100::"]),
        # host-first suffixes: a bare name is a host unless written like a file
        (
            "phish at wallet-sync.app, olx-pay.pl, drop.one, go.run and b2b.rs",
            ["wallet-sync.app", "olx-pay.pl", "drop.one", "go.run", "b2b.rs"],
        ),
        ("files Invoice_2024.one, Safari.app, Setup_x64.run, notes.md and x.py", []),
        ("packages com.bad.app and net.corp.tool.app; self.name, this.link", []),
        # URL hosts: a public suffix or an alternative root
        (
            "http://loader.dll/x http://drop.bin/ http://api.svc:80/ http://kv.consul/ http://a.b/",
            [],
        ),
        ("http://x.bit/ and hxxp://market.bazar/x", ["x.bit", "market.bazar"]),
        ("http://leak4kx.onion/x and mirror leak4kx.onion, 4.3.2.1.in-addr.arpa", []),
        # JSON strings scanned as text, with a fingerprint, thumbprint or commit before them
        (
            f'JA3 `{MD5}`, ja3 hash {MD5}, "ja3_hash": "{MD5}", | Imphash | {MD5} |',
            [],
        ),
        (
            f"Thumbprint: {SHA1}, commit {SHA1}, https://git.bad.net/r/commit/{SHA1}",
            ["git.bad.net"],
        ),
        (f"https://git.bad.net/r/blob/{SHA1}/x.c and ProcessGuid {MD5}", ["git.bad.net"]),
        # tcpdump's address and port
        (
            "IP 198.51.100.40.8443 > 192.0.2.41.50000: Flags [S.]",
            ["198.51.100.40", "192.0.2.41"],
        ),
        ("OID 1.3.6.1.4 and version 1.2.3.4.5", []),
        # code: a call, a CSS rule, an import
        ("r = requests.post(u); log.info(x); a.link { color: red } import java.net.*;", []),
        # versions after a product, or a `v=` key
        (
            "Opera OPR/95.0.0.0, SAP/7.40.0.2, ?id=3&v=2.1.0.5 but DIRECT/192.0.2.60",
            ["192.0.2.60"],
        ),
        # odd defangs
        (
            "c2[[.]]bad.net, c2b[.]]bad.net, c2c[[.]bad.net, c2d<.>bad.net",
            ["c2.bad.net", "c2b.bad.net", "c2c.bad.net", "c2d.bad.net"],
        ),
        # a defanged colon before a port, after an address with `::`
        ("2001:db8:6::7[:]8443 and [2001:db8:6::8][:]443", ["2001:db8:6::7", "2001:db8:6::8"]),
    ],
)
def test_second_attack_forms(text: str, expected: list[str]) -> None:
    assert extract(text) == expected


# What the second attack's findings left open, each with examples of our own.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # file-sharing hosts under a script's suffix are hosts; other bare `name.sh` are files
        ("sent to transfer.sh, then temp.sh; ran install.sh", ["transfer.sh", "temp.sh"]),
        # under a host-first suffix, a source file's name is a file's
        ("sources main.rs, mod.rs, lib.rs, index.pl and a.pl", []),
        ("but shop-main.rs, b2.rs and go-lib.pl are hosts", ["shop-main.rs", "b2.rs", "go-lib.pl"]),
        # under an archive's suffix a longer name is a file's, unless its first label is a host's
        ("archives crack.keygen.zip, windows.loader.zip, office.activator.cab, my.home.mov", []),
        (
            "hosts www.setup.zip, dl.tools.zip and a defanged crack.keygen[.]zip",
            ["www.setup.zip", "dl.tools.zip", "crack.keygen.zip"],
        ),
        # `DOT` in capitals between words is a defanged dot; in lower case it is prose
        ("c2e DOT bad DOT net, C2F DOT ORG", ["c2e.bad.net", "c2f.org"]),
        ("the dot com era, a Dot net guide, DOT. com and x DOT", []),
        # a reStructuredText link target's `_` is no part of the name
        (".. _bad-target.tk: http://bad-target.tk/x", ["bad-target.tk", "bad-target.tk"]),
        ("but _sip._udp.bad-voip.net is one", ["_sip._udp.bad-voip.net"]),
        # fingerprints in JSON read as text: Suricata's nested `ja3`, MISP's typed value
        (f'{{"ja3":{{"hash":"{MD5}"}},"ja3s": {{"hash": "{MD5}"}}}}', []),
        (f'{{"type": "ja3-fingerprint-md5", "value": "{MD5}"}}', []),
        (f'{{"type": "md5", "value": "{MD5}"}}, {{"hash":"{SHA1}"}}', [MD5, SHA1]),
        # a package pinned to a version; but a filter's address after `==`
        (
            "pip install bad-pkg==1.2.3.4 requests==2.31.0.1; "
            "ip.addr==198.51.100.70, RemoteIP==198.51.100.71, x == 198.51.100.72",
            ["198.51.100.70", "198.51.100.71", "198.51.100.72"],
        ),
        # one group and `::`: an address when defanged, a term or a date's end when plain
        ("seen 2002[:]: and 2001:db8::9 beside 2:: and 2015-05-26::", ["2002::", "2001:db8::9"]),
        # attributes of objects code names often, under TLDs that are attributes' names too
        ("print(user.id, user.email); h = location.host; item.link = x; cfg.network", []),
        (
            "but user-portal.id, bad.email, users.info and user.com are hosts",
            ["user-portal.id", "bad.email", "users.info", "user.com"],
        ),
    ],
)
def test_second_attack_forms_left_open(text: str, expected: list[str]) -> None:
    assert extract(text) == expected


_V6_BITS = st.sampled_from(
    [*"0123456789abcdefABCDEF:.xyz_ []/-", "::", "fe80", "2001:db8", "\n", "src:", "IPv6:", "ip6"]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_V6_BITS, max_size=80).map("".join))
def test_ipv6_candidates_match_their_reference_pattern(text: str) -> None:
    from enricher.inputs.extract import _IPV6_BODY, _ipv6_candidates

    # an address after a character that is no part of one, or after a key glued to it by
    # one colon (letters, maybe a digit: `src:`, `IPv6:`; two to sixteen characters) that is
    # no group of an address itself (`src:a0:0::` holds none); a `-` or `_` before the colon
    # is a separator (`a-:0::` is `:0::` after one), not the end of a key
    key = r"(?<![0-9A-Za-z_:.-])[A-Za-z](?:[A-Za-z_-]{0,13}[A-Za-z][0-9]?|[0-9]):(?!:)"
    reference = re.compile(rf"(?:[^0-9A-Za-z:.]|{key}){_IPV6_BODY}")
    text = "\n" + text
    want = [m.span(1) for m in reference.finditer(text)]
    assert [m.span(1) for m in _ipv6_candidates(text)] == want


_V6_TEXT = st.lists(st.sampled_from([*"0123456789abcdefABCDEF:.", "::", "0", "ffff"]), max_size=45)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(_V6_TEXT.map("".join), st.ip_addresses(v=6).map(str)))
def test_ipv6_compression_agrees_with_ipaddress(text: str) -> None:
    import ipaddress

    from enricher.inputs.extract import _compress

    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        want = None
    else:  # an IPv4-mapped address is its IPv4 address, as `normalize` gives it
        mapped = address.ipv4_mapped
        want = address.compressed if mapped is None else str(mapped)
    assert _compress(text) == want


@pytest.mark.parametrize(
    "text",
    [
        'pe.imphash() == "f34d5f2d4577ed6d9ceec516c1f5a744"',
        '"serial_number":"3C6B9A0E27D14F1F0A2B3C4D5E6F7A8B"',
        "magnet:?xt=urn:btih:5a1e2f3c4d6b7a8e9f0c1d2e3f4a5b6c7d8e9f0a&dn=x",
    ],
)
def test_fingerprints_and_info_hashes_are_no_file_hashes(text: str) -> None:
    assert extract(text) == []


def test_hex_runs_match_their_reference_pattern() -> None:
    from enricher.inputs.extract import _HEX, _hex_runs

    text = (
        f" {MD5} g{MD5} {MD5}g {MD5}{MD5}x {SHA1}.{SHA256}-{'0' * 32}\n{'f' * 100}"
        f"é{MD5}é {MD5[:31]} ({SHA256.upper()})"
    )
    for t in (text, text.encode("ascii", "ignore").decode()):
        assert list(_hex_runs(t)) == [m.span(1) for m in _HEX.finditer(t)]


def test_extract_markdown_emphasis_and_ipv6_forms() -> None:
    got = extract("Markdown **evil.com**, _evil2.com_, `evil3.com` and [evil4.com](x)")
    assert got == ["evil.com", "evil2.com", "evil3.com", "evil4.com"]
    got = extract("v6 fe80::1%eth0, 2001:db8:0:0:0:0:0:1 and ::ffff:192.0.2.1")
    # the IPv4-mapped address is the IPv4 address, as `normalize` has it
    assert got == ["fe80::1", "2001:db8::1", "192.0.2.1"]


def test_every_value_normalizes_to_itself() -> None:
    text = (
        f"hxxps://Login.Evil[.]COM/x {MD5.upper()} 1.2.3[.]4 2001:DB8::1 пример.рф "
        "a@b.evil.org evil.com."
    )
    for value in extract(text):
        ioc_type, normal = normalize(value)
        assert ioc_type is not None and normal == value


def test_line_numbers() -> None:
    text = "nothing here\nevil.com and 1.2.3.4\n\n" + MD5 + "\n" + "x" * 100 + " evil2.net"
    values, lines = extract_lines(text, 10)
    assert sorted(zip(values, lines, strict=True), key=lambda x: x[1]) == [
        ("evil.com", 11),
        ("1.2.3.4", 11),
        (MD5, 13),
        ("evil2.net", 14),
    ]


def test_file_like_name_is_taken_only_on_its_defanged_line() -> None:
    text = "the attachment payload.zip\nC2 payload[.]zip\nand install.sh"
    assert extract_lines(text, 1) == (["payload.zip"], [2])


def test_refang_leaves_clean_text_alone() -> None:
    clean = "no marker at all, not even one.\n" * 1000
    assert refang(clean) is clean


# -- properties ------------------------------------------------------------------------------

_TRICKY = st.sampled_from(
    [*"[](){}.:/@\\-_%+ \t\n\"'<>|,;=#x0aAfF", "hxxp", "[.]", "(dot)", "::", "://", "é"]
)
_NOISE = st.lists(st.one_of(st.characters(), _TRICKY), max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(_NOISE)
def test_extract_never_raises_and_gives_normalized_iocs(text: str) -> None:
    values, lines = extract_lines(text, 1)
    assert len(values) == len(lines)
    assert all(1 <= n <= text.count("\n") + 1 for n in lines)
    for value in values:
        assert normalize(value)[1] == value


_LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12).filter(
    lambda s: not s.isdigit()
)
_DOMAINS = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.sampled_from(["com", "net", "org", "ru", "io", "co.uk", "info", "xyz", "de"]),
)
_IPV4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_HASHES = (
    st.sampled_from([16, 20, 32])
    .flatmap(lambda n: st.binary(min_size=n, max_size=n).map(bytes.hex))
    .filter(lambda h: not h.isdigit())
)
_IOCS = st.one_of(_DOMAINS, _IPV4, _HASHES)
_WORDS = st.lists(
    st.text(string.ascii_letters + "',;!?()", min_size=1, max_size=10), max_size=6
).map(" ".join)
# noise words that say the value after them is a version or a fingerprint, not an IOC
_SAYS_NO_IOC = r"ersion|imphash|ja[34]|hassh|serial|btih|print|commit|guid|uuid"
_SEPARATORS = st.sampled_from([" ", "\t", "\n", " (", ") ", ", ", ": ", " | ", ' "', '" ', "\n> "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_WORDS, _SEPARATORS, _IOCS, _SEPARATORS), min_size=1, max_size=5))
def test_iocs_in_noise_are_found(parts: list[tuple[str, str, str, str]]) -> None:
    text = "".join(f"{before}{sep}{ioc}{sep2}" for before, sep, ioc, sep2 in parts)
    # noise that happens to spell a defanging, or a key that marks a value as no IOC
    assume(not re.search(r"[\[({]\s*(dot|at)\s*[\])}]", text, re.IGNORECASE))
    assume(not re.search(_SAYS_NO_IOC, text, re.IGNORECASE))
    found = set(extract(text))
    for _, _, ioc, _ in parts:
        ioc_type, value = normalize(ioc)
        assert ioc_type is not None
        if not is_program_name(ioc, value):  # a package's name, `org.a.com`: unless defanged
            assert value in found, (ioc, text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_WORDS, _IOCS), min_size=1, max_size=4))
def test_defanged_iocs_in_noise_are_found(parts: list[tuple[str, str]]) -> None:
    text = " ".join(f"{words} {ioc.replace('.', '[.]')} ," for words, ioc in parts)
    assume(not re.search(_SAYS_NO_IOC, text, re.IGNORECASE))
    found = set(extract(text))
    for _, ioc in parts:
        assert normalize(ioc)[1] in found, (ioc, text)


# The definition of refang before its pattern was rewritten for speed: the fast pattern must
# give the same result on any text.
_REFERENCE = re.compile(
    r"""
      (?<=[0-9A-Za-z]) (?-i: (?P<spelled> \ DOT\ ) ) (?=[0-9A-Za-z])
    | (?P<dot> \ ?[\[({]\[?\ ?(?:\.|dot)\ ?[\])}]\]?\ ? )
    | (?P<at> \ ?[\[({]\ ?(?:@|at)\ ?[\])}]\ ? )
    | [\[({] (?P<punct> :// | :/ | : | / ) [\])}]
    | (?P<half> \[\. | \.\] )
    | (?P<escaped> \\\. )
    | (?P<angle> <\.> )
    | \b (?P<scheme> h[xX]{2}p | f[xX]p ) (?P<s> s? ) (?= [\[({]? : )
    """,
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)


def _reference_refang(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        kind = m.lastgroup
        if kind in ("dot", "half", "escaped", "angle", "spelled"):
            return "."
        if kind == "at":
            return "@"
        if kind == "punct":
            return m["punct"]
        return ("http" if m["scheme"][0] in "hH" else "ftp") + m["s"].lower()

    return _REFERENCE.sub(one, text)


_DEFANG_WORDS = [
    "dot",
    "DoT",
    "at",
    "hxxp",
    "HXXPS",
    "fxp",
    "[.]",
    "(dot)",
    " [ . ] ",
    "[:]",
    "[[.]]",
    "<.>",
    " DOT ",
    "x DOT y",
]
_DEFANG_BITS = st.sampled_from([*" [](){}<>.\\hHfFxXpPsSdDoOtTaA@:/_0a-é\n", *_DEFANG_WORDS])


_FILLER = st.sampled_from(["lorem ipsum dolor ", "x" * 30, " " * 13, "\n"])


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(_DEFANG_BITS, _FILLER), max_size=80).map("".join))
def test_fast_refang_matches_its_reference(text: str) -> None:
    assert refang(text) == _reference_refang(text)


def test_the_public_suffix_list_is_read_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from enricher.inputs import suffixes

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the public suffix list must not go to the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    suffixes._list.cache_clear()
    suffixes.top_labels.cache_clear()
    suffixes.registrable.cache_clear()
    assert suffixes.has_public_suffix("evil.co.uk")
    assert not suffixes.has_public_suffix("co.uk")
    assert not suffixes.has_public_suffix("invoice.pdf")
    assert suffixes.has_public_suffix("user.github.io")  # the ICANN section only: io


_TOPS = [
    "com", "net", "ru", "io", "uk", "co.uk", "jp", "kawasaki.jp", "city.kawasaki.jp", "ck",
    "www.ck", "us", "k12.ma.us", "xn--p1ai", "рф", "bit", "local", "zip", "arpa", "com.au",
    "github.io", "blogspot.com", "bd", "er", "kobe.jp", "city.kobe.jp", "mm", "dyndns.org",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", "b-c", "city", "www", "co", "k12", "9", "x_y"]), max_size=3),
       st.sampled_from(_TOPS))  # fmt: skip
def test_public_suffix_shortcut_agrees_with_the_list(labels: list[str], top: str) -> None:
    from enricher.inputs import suffixes

    name = ".".join([*labels, top])
    ioc_type, value = normalize(name)
    assume(ioc_type is not None)
    want = suffixes._list().privatesuffix(value) is not None
    assert suffixes.has_public_suffix(value) is want, value
