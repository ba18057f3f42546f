"""Ingest's plain lines in C (`_dedupe.take_plain`) give what its per-line Python step gives:
the same new keys in the same order, rejects, withheld and unsupported IOCs, and counts."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.inputs import Chunk
from enricher.ioc import IocType
from enricher.pipeline import dedupe
from enricher.pipeline import ingest as ingest_module
from enricher.pipeline.dedupe import Deduper
from enricher.pipeline.ingest import Ingest
from enricher.pipeline.ledger import Ledger
from enricher.pipeline.privacy import Privacy
from enricher.pipeline.stats import RunStats

needs_c = pytest.mark.skipif(
    dedupe.C_TABLES is None, reason="the C module is not built (or ENRICHER_NO_C)"
)

MD5 = "0123456789abcdef" * 2
SHA1 = "89abcdef01234567" * 2 + "fedc0123"
SHA256 = "fedcba9876543210" * 4
#: plain forms, their neighbours that the fast path leaves to the slow one, and what is no IOC
LINES = [
    MD5, MD5.upper(), f"  {MD5}\t", f"{MD5}\r", SHA1, SHA1.upper(), SHA256, f" {SHA256} ",
    MD5[:-1] + "g", MD5 + "0", "0x" + MD5[2:], MD5[:16] + " " + MD5[16:],
    "8.8.8.8", "8.8.8.8\r", " 1.2.3.4 ", "10.0.0.1", "127.0.0.1", "01.2.3.4", "1.2.3.256",
    "1.2.3", "1.2.3.4.5", "1.2.3.4:80", "[1.2.3.4]", "1[.]2[.]3[.]4",
    "evil.com", "EVIL.com", "evil.com.", "Evil.Com.\r", "evil.com..", ".evil.com", "*.evil.com",
    "a_b.evil.com", "evil.co_m", "-a.com", "a-.com", "a.b-.com", "x" * 63 + ".com",
    "x" * 64 + ".com", ("a" * 61 + ".") * 4 + "com", ("a" * 62 + ".") * 4 + "com",
    "xn--bcher-kva.de", "abxn--c.com", "XN--bcher-kva.de", "bücher.de", "evil.123",
    "evil.com1", "1.2.3.com", "host.local", "printer.lan", "a.onion", "invoice.pdf", "co.uk",
    "evil.bit", "evil[.]com", "hxxp://evil.com/x", "evil.com:8443", "user@evil.com",
    "::1", "2a03:2880:f0c1::1", "::ffff:1.2.3.4", "", "   ", "\r", "# a comment", "  # too",
    "N/A", "-", "unknown", "deadbeefcafe", "see attached report", "MD5=" + MD5,
    "\u00a0evil.com", "evil.com\u200b", "\x1cevil.com\x1f", "\x0bevil.com\x0c", "x" * 300,
    # the messy forms decided in C, and their neighbours
    "cdn-1[.]m1[.]example[.]com", "EVIL[.]COM[.]", "[.]evil.com", "evil[.][.]com", "evil[[.]]com",
    "evil[.]]com", "evil[.com", "evil.]com", "evil(.)com", "evil{.}com", "evil[dot]com",
    "evil<.>com", "evil\\.com", "evil DOT com", "11[.]0[.]3[.]7", "11[.]0[.]3[.]07",
    "hxxps://cdn[.]evil[.]com/login.php?id=7", "https://evil.com/static/1.js", "HTTP://Evil.COM",
    "http://evil.com:8080/x", "http://evil.com:/x", "http://evil.com:99999/", "http://user@evil.com",
    "http:///x", "http://evil.com/[.]x", "http://evil.com/a\\.b", "http://evil.com/export",
    "hxxp://1.2.3.4/gate.php", "hXXp://11.0.3.7", "fxp://evil.com", "ftp://evil.com",
    "evil.com:8443", "evil.com:", "evil.com:0", "evil.com:65536", "1.2.3.4:80", "1.2.3.4:",
    "billing1@evil.com", "a@b@evil.com", "@evil.com", "user@evil.com:25", "*.evil.com.",
    "*.*.evil.com", "*.", "*.1.2.3.4", "a.*.evil.com", "*evil.com", "evil.com/path",
    "evil.com?x", "10.0.0.0/8", "1.2.3.4/32", "2a03:2880:f0c1::1", "2A03:2880:F0C1::ABCD",
    "2a03:2880:f0c1:0000:0000:0000:0000:0001", "[2a03:2880:f0c1::1]:443", "[2A03:2880:F0C1::1]",
    "[2a03:2880:f0c1::1]:", "[::1]:443", "http://[2a03:2880:f0c1::1]/", "http://[2a03::1]:8/x",
    "[2a03::1]/x", "fe80::1%eth0", "::ffff:1.2.3.4", "::1.2.3.4", "2a03::1::2", "2a03:::1",
    "gggg::1", "user@2a03::1", "http://2a03::1/", "fc00::1", "x.hxxp:80", "a.fxp:80",
    # IPv6 in hex groups alone: parsed and written in C; IPv4-mapped, the IPv4 address
    "::", "::0", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::1", "::1:", ":1::",
    "1:::2", "0001:0:0:0:0:0:0:1", "2a03:0:0:1:0:0:0:1", "2a03:0:0:1:0:0:1:1", "::b00:37",
    "::ffff:b00:37", "::ffff:0:b00:37", "0:0:0:0:0:ffff:11.0.0.55", "::FFFF:11.0.0.55",
    " ::ffff:11.0.0.55\r", "::ffff:11.0.0.055", "::ffff:11.0.0", "::ffff:10.0.0.1",
    "::fffff:1.2.3.4", "::ffff:1.2.3.4.5", "[::ffff:11.0.0.55]:443", "::ffff:1.2.3.4:80",
    "64:ff9b::b00:37", "2002:b00:37::1", "2001::b00:37", "fe80::1", "ff02::1",
    # the schemes read by their letters, the `xn--` found while a name's labels are read
    "hTtPs://evil.com", "HXXPS://evil.com/", "hxxps:/evil.com", "htxp://evil.com", "https://",
    "http://x", "https:///", "hxxpx://evil.com", "a.bxn--c.com", "xn--.com", "a.xn--", "a.xn-",
    "xn-.com", "a-xn--b.com", "n--a.com", "x.n--a.com", "user@xn--bcher-kva.de",
    # empty brackets: no host to read (the caller once read the byte before an empty one:
    # UBSan's index -1 of `text`, attack-atm)
    "[]", "[]:443", "[]:", " [] ", "http://[]/", "https://[]:8/x", "hxxp://[]", "[][.]",
]  # fmt: skip


#: pieces of the messy forms, put together at random
TOKENS = ["evil", "EVIL", "1", "255", "256", "01", "a", "f", "com", "local", "bit", "xn--",
          ".", "[.]", "[", "]", ":", "::", "@", "*.", "/", "?", "#", "http://", "hxxps://",
          "hxxp", "xp", "-", "_", "8443", " ", "ffff", "2a03", "https://", "HXXP://", "htxp://",
          "http:/", "xn-", "n--"]  # fmt: skip


@st.composite
def six_lines(draw: st.DrawFn) -> str:
    """An IPv6 address, many of its groups zero, in a form a messy export holds."""
    groups = draw(st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x2A03, 0xB00, 0x37]) |
                           st.integers(0, 0xFFFF), min_size=8, max_size=8))  # fmt: skip
    address = ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups))
    text = draw(st.sampled_from([address.compressed, address.exploded, str(address)]))
    if address.ipv4_mapped is not None and draw(st.booleans()):
        text = f"::ffff:{address.ipv4_mapped}"
    form = draw(st.sampled_from(["{}", "[{}]:443", "http://[{}]/", " {} ", "{}\r", "[{}]"]))
    return form.format(text.upper() if draw(st.booleans()) else text)


def ingest(
    *,
    plain: bool,
    send_sha256: bool = True,
    done: Deduper | None = None,
    withhold: Callable[[IocType, str], str | None] | None = None,
) -> Ingest:
    stage = Ingest(
        Ledger(RunStats()),
        withhold=withhold or Privacy().reason,
        done=done,
        send_sha256=send_sha256,
    )
    if not plain:  # the per-line Python step alone, for every line
        stage._plain_made = True
    return stage


def taken(stage: Ingest, chunks: list[list[str | None]]) -> object:
    results = []
    for n, lines in enumerate(chunks):
        outcome, new = stage.take(Chunk("f", 1 + 1000 * n, lines, {0: "unreadable"}))
        results.append((new, outcome.rejects, outcome.skipped, outcome.failures))
    s = stage.stats
    counts = (s.lines_read, s.skipped, s.duplicates, s.already_done, s.rejected)
    return results, counts, dict(s.reject_reasons), len(stage.deduper)


def test_the_plain_step_is_in_c_where_the_module_was_built() -> None:
    stage = ingest(plain=True)
    assert (stage._plain_taker() is not None) == (dedupe.C_TABLES is not None)


@needs_c
@pytest.mark.parametrize("send_sha256", [True, False])
def test_plain_lines_in_c_give_what_the_python_step_gives(send_sha256: bool) -> None:
    done = Deduper()
    done.add(IocType.DOMAIN, "done.example.org")
    done.add(IocType.MD5, MD5.replace("0", "1"))
    chunks = [
        LINES,
        [None, *LINES[::-1]],
        ["done.example.org", MD5.replace("0", "1").upper(), "fresh.example.org", *LINES],
    ]
    c = ingest(plain=True, send_sha256=send_sha256, done=done)
    python = ingest(plain=False, send_sha256=send_sha256, done=done)
    assert taken(c, chunks) == taken(python, chunks)
    assert c._plain is not None and python._plain is None


@needs_c
@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from(LINES)
            | st.text(alphabet="abcdefABCDEF0123456789.-_:x# \t\r[]@*/?()p", max_size=70)
            | st.lists(st.sampled_from(TOKENS), max_size=8).map("".join),
            max_size=25,
        ),
        max_size=4,
    )
)
def test_any_lines_give_the_same_in_c_and_in_python(chunks: list[list[str | None]]) -> None:
    assert taken(ingest(plain=True), chunks) == taken(ingest(plain=False), chunks)


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(six_lines() | st.sampled_from(LINES), max_size=30), max_size=3))
def test_ipv6_lines_give_the_same_in_c_and_in_python(chunks: list[list[str | None]]) -> None:
    assert taken(ingest(plain=True), chunks) == taken(ingest(plain=False), chunks)


def _sevens(ioc_type: IocType, value: str) -> str | None:
    """A rule of no Privacy's: every address or name with a 7 in it."""
    return "a seven" if "7" in value else None


#: the rules a run may withhold by: the default, its own networks and domains, sending the
#: internal ones, and a function of its own (all keys asked, none screened)
WITHHOLD = [
    Privacy().reason,
    Privacy(internal_networks=["11.0.0.0/16", "2a03:2880::/32"],
            internal_domains=["example.com", "evil.com"]).reason,
    Privacy(send_internal=True).reason,
    _sevens,
]  # fmt: skip
MORE = ["11.0.3.7", "11.1.3.7", "11[.]0[.]3[.]7", "::ffff:11.0.0.5", "2a03:2880:f0c1::1",
        "2a03:2881::1", "[2a03:2880::7]:443", "cdn-7.m7.example.com", "a.b.example.org",
        "hxxps://evil[.]com/x", "EVIL.COM", "10.0.0.7", "fc00::7", "::ffff:10.0.0.7"]  # fmt: skip


@needs_c
@pytest.mark.parametrize("send_sha256", [True, False])
@pytest.mark.parametrize("withhold", WITHHOLD)
def test_the_screen_gives_what_asking_every_key_gives(
    withhold: Callable[[IocType, str], str | None], send_sha256: bool
) -> None:
    """The C step flags only the keys the rule may withhold (or sha256 with send_sha256
    off); the Python step looks at every key: the same keys asked, withheld, unsupported."""
    chunks = [LINES + MORE, MORE[::-1] + LINES[::-1], [MD5.upper(), SHA256, *MORE]]
    c = ingest(plain=True, send_sha256=send_sha256, withhold=withhold)
    python = ingest(plain=False, send_sha256=send_sha256, withhold=withhold)
    assert taken(c, chunks) == taken(python, chunks)


def _carried_forms(v4: str) -> list[str]:
    """`v4` in every IPv6 form that carries it, in hex and dotted, with zones and ports."""
    a, b, c, d = (int(x) for x in v4.split("."))
    hi, lo = f"{a << 8 | b:x}", f"{c << 8 | d:x}"
    teredo = f"{0xFFFF ^ (a << 8 | b):x}:{0xFFFF ^ (c << 8 | d):x}"
    return [
        v4, f"::ffff:{v4}", f"::FFFF:{v4}", f"0:0:0:0:0:ffff:{v4}", f"::{v4}",
        f"::ffff:{hi}:{lo}", f"::{hi}:{lo}", f"::ffff:0:{hi}:{lo}", f"64:ff9b::{v4}",
        f"64:ff9b::{hi}:{lo}", f"64:FF9B:1::{hi}:{lo}", f"2002:{hi}:{lo}::1", f"2002:{hi}:{lo}::",
        f"2001:0:4136:e378:8000:63bf:{teredo}", f"fe80::{hi}:{lo}%eth0", f"[::ffff:{v4}]:80",
        f"http://[::ffff:{v4}]/", f"[::ffff:{hi}:{lo}]:443", f"::ffff:{v4}%eth0",
        f"0000:0000:0000:0000:0000:FFFF:{a << 8 | b:04X}:{c << 8 | d:04X}", f"hxxp://{v4}/a",
        v4.replace(".", "[.]"), f"{v4}:443",
    ]  # fmt: skip


OWN_FORMS = [
    "example.com", "EXAMPLE.COM", "Example.Com.", "www.example.com", "WWW.EXAMPLE.COM.",
    "a.b.example.com", "ｅｘａｍｐｌｅ.com", "example。com", "example[.]com",
    "hxxps://www.example.com/x", "http://EXAMPLE.com:8080/", "*.example.com", "user@example.com",
    "example.com:443", "xn--bcher-kva.de", "XN--BCHER-KVA.DE", "www.bücher.de", "BÜCHER.DE.",
    "sub.xn--bcher-kva.de", "A.CORP.EXAMPLE.ORG.", "notexample.com", "example.com.evil.net",
]  # fmt: skip


@needs_c
def test_no_form_of_a_withheld_address_or_own_name_is_asked() -> None:
    """attack-s10i: private and own IPv4 addresses carried in IPv6 (mapped, compatible, SIIT,
    NAT64, 6to4, Teredo, zones, brackets) and own domains in every case, dot and IDNA form:
    the C step's screen asks none of them, as the Python step does not."""
    v4s = ["10.0.0.1", "192.168.1.1", "127.0.0.1", "169.254.1.1", "100.64.0.1", "8.8.8.8"]
    v4s.append("1.1.1.1")
    lines: list[str | None] = [f for v4 in v4s for f in _carried_forms(v4)]
    lines += OWN_FORMS
    rule = Privacy(
        internal_domains=["EXAMPLE.com.", "bücher.de", "*.corp.example.org"],
        internal_networks=["8.8.8.0/24", "::ffff:1.1.1.0/120"],
    ).reason
    c = ingest(plain=True, withhold=rule)
    _, new = c.take(Chunk("f", 1, list(lines)))
    assert sorted(v for _, v in new) == ["example.com.evil.net", "notexample.com"]
    assert taken(ingest(plain=True, withhold=rule), [lines]) == taken(
        ingest(plain=False, withhold=rule), [lines]
    )


class _Forgets(dict[str, str]):
    """A memo of lines that are no IOC that keeps none: every line takes the whole path."""

    def __setitem__(self, key: str, value: str) -> None:
        pass


@pytest.mark.parametrize("bound", [4096, 2])
def test_a_line_that_is_no_ioc_again_is_rejected_as_it_was_the_first_time(
    monkeypatch: pytest.MonkeyPatch, bound: int
) -> None:
    junk = ["N/A", " N/A\r", "see attached report", "MD5=" + MD5, "999.12.4.1", "localhost", "-"]
    chunks = [junk, [*junk[::-1], "TBD", "N/A"], junk]
    monkeypatch.setattr(ingest_module, "_NO_IOC_MAX", bound)
    calls: list[str] = []
    real = ingest_module.extract

    def counted(text: str) -> list[str]:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(ingest_module, "extract", counted)
    remembers = ingest(plain=True)
    remembered = taken(remembers, chunks)
    asked = sorted(calls)
    forgets = ingest(plain=True)
    forgets.no_ioc = _Forgets()
    assert remembered == taken(forgets, chunks)
    assert len(remembers.no_ioc) <= bound
    if bound > len(junk):
        # a line that is none, once; one with IOCs inside (`MD5=...`), every time
        once = {line.strip() for line in [*junk, "TBD"]} - {junk[3]}
        assert asked == sorted([*once, junk[3], junk[3], junk[3]])


def test_a_long_line_that_is_no_ioc_is_not_remembered() -> None:
    """attack-atm: every line that is none was kept, up to 4,096 of them, however long (1 MiB
    each, `max_line_bytes`): 300 such lines of 620 KB held 190 MB until the run ended. Only
    short ones are remembered; the rejects are the same."""
    longest = ingest_module._NO_IOC_LONGEST
    junk: list[str | None] = ["q" * longest, "r" * (longest + 1), "N/A"]
    junk.append(" ".join(f"w{n}" for n in range(5000)))
    stage = ingest(plain=True)
    forgets = ingest(plain=True)
    forgets.no_ioc = _Forgets()
    assert taken(stage, [junk, junk]) == taken(forgets, [junk, junk])
    assert sorted(stage.no_ioc) == ["N/A", "q" * longest]  # not the two longer
