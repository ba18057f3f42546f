"""Privacy: internal addresses and names, and the organization's own, never leave the machine.

The far end is a real emulator process that remembers every key it was sent
(`GET /emulator/keys`): each input format is run against it, and nothing internal may be
among them, while every withheld IOC is accounted for in the skipped file and the invariant.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import orjson
import pytest
from helpers import emulator_process, enricher, read_ndjson
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher import Enricher
from enricher.config.settings import load_settings
from enricher.emulator import Emulator, EmulatorConfig
from enricher.emulator.process import emulator_keys
from enricher.errors import SettingsError
from enricher.ioc import IocType
from enricher.pipeline import privacy as privacy_module
from enricher.pipeline.normalize import normalize
from enricher.pipeline.privacy import Privacy

#: what a week of logs from an infected network holds that must never be sent
INTERNAL = {
    "172.16.9.233": "private address",
    "172.16.9.5": "private address",
    "172.16.9.255": "private address",
    "255.255.255.255": "broadcast address",
    "fd3e:4f5a:5b81::1": "unique local address (private)",
    "10.0.0.1": "private address",
    "192.168.1.10": "private address",
    "127.0.0.1": "loopback address",
    "169.254.10.20": "link-local address",
    "100.64.0.5": "shared address space (carrier-grade NAT)",
    "224.0.0.251": "multicast address",
    "198.51.100.7": "documentation address",
    "fe80::1": "link-local address",
    "ff02::fb": "multicast address",
    "dc01.corp.local": "internal name (.local)",
    "fileserver.internal": "internal name (.internal)",
    "::10.0.0.9": "private address (10.0.0.9 inside)",
    "64:ff9b::11.23.0.8": "own network (11.23.0.0/16)",
    "mail.acme-corp.com": "own domain (acme-corp.com)",
    "23.1.2.3": "own network (23.1.2.0/24)",
    "abcdefghijklmnop.onion": "special-use name (.onion)",
}
#: what may be sent
GLOBAL = {"8.8.8.8", "1.1.1.1", "2a0b:4140:8f2c::20", "evil-update.com", "c2.badcdn.net",
          "44d88612fea8a8f36de82e1278abb02f"}  # fmt: skip
OWN = ("--internal-domain", "acme-corp.com", "--internal-network", "23.1.2.0/24",
       "--internal-network", "::ffff:11.23.0.0/112")  # fmt: skip


def _sent(url: str) -> set[str]:
    keys = emulator_keys(url)
    assert not keys["truncated"]
    return {k for ep in ("file_batch", "domain_batch", "ip_batch") for k in keys[ep]}


def _canonical(value: str) -> str:
    return normalize(value)[1] or value


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("10.1.2.3", "private address"),
        ("0.1.2.3", "unspecified address (this network)"),
        ("192.0.2.1", "documentation address"),
        ("203.0.113.9", "documentation address"),
        ("198.18.0.1", "benchmarking address"),
        ("240.1.1.1", "reserved address"),
        ("239.255.255.250", "multicast address"),
        ("::", "unspecified address"),
        ("::1", "loopback address"),
        ("2001:db8::1", "documentation address"),
        ("fec0::1", "site-local address (private)"),
        # an IPv6 address that carries an IPv4 one is judged by it
        ("2002:a00:1::1", "private address (10.0.0.1 inside)"),
        ("2002:808:808::1", None),
        ("64:ff9b::a01:101", "private address (10.1.1.1 inside)"),
        ("64:ff9b::808:808", None),
        ("::a00:1", "private address (10.0.0.1 inside)"),  # IPv4-compatible
        ("::ffff:0:a00:7", "private address (10.0.0.7 inside)"),  # IPv4-translated
        ("64:ff9b:1::a00:9", "local-use NAT64 address"),
        # outside global unicast (2000::/3), or not globally reachable inside it
        ("4000::1", "not a global unicast address"),
        ("fe00::1", "not a global unicast address"),
        ("5f00::1", "segment routing (SRv6) address"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private address (10.0.0.1 inside)"),
        # globally reachable, inside ranges that are not (IANA's special-purpose registries)
        ("192.0.0.9", None),
        ("192.0.0.10", None),
        ("2001:1::1", None),
        ("2001:3::1", None),
        ("2001:4:112::1", None),
        ("2001:20::1", None),
        ("2620:4f:8000::1", None),
        ("100.128.0.1", None),
        ("172.32.0.1", None),
        ("192.169.0.1", None),
    ],
)
def test_addresses_that_are_not_global_are_withheld(address: str, why: str | None) -> None:
    ioc_type = IocType.IPV6 if ":" in address else IocType.IPV4
    assert Privacy().reason(ioc_type, str(ipaddress.ip_address(address))) == why


def test_every_non_global_ipv4_range_is_withheld() -> None:
    # the table agrees with `ipaddress` on every range it knows of (but the IETF's 192.0.0/24,
    # where .9 and .10 are global; and multicast, which is never sent)
    privacy = Privacy()
    for first in range(256):
        for rest in ("0.0.0", "64.0.1", "168.1.1", "254.9.9", "255.255.255"):
            ip = ipaddress.IPv4Address(f"{first}.{rest}")
            internal = not ip.is_global or ip.is_multicast
            assert (privacy.reason(IocType.IPV4, str(ip)) is not None) == internal, ip


def test_own_networks_hold_the_ipv4_addresses_ipv6_ones_carry() -> None:
    privacy = Privacy(internal_networks=["11.0.0.0/8", "11.5.0.0/16", "::ffff:23.77.0.0/112"])
    for value in ("11.0.0.1", "11.5.0.1", "64:ff9b::b00:3", "2002:b00:4::1", "::b00:6",
                  "2001:0:4136:e378:8000:63bf:f4ff:fffa"):  # fmt: skip
        ioc_type = IocType.IPV6 if ":" in value else IocType.IPV4
        assert privacy.reason(ioc_type, value) == "own network (11.0.0.0/8)", value
    # a mapped network is the IPv4 network (IOCs spelled so are read as IPv4 addresses)
    assert privacy.reason(IocType.IPV4, "23.77.1.1") == "own network (23.77.0.0/16)"
    assert privacy.reason(IocType.IPV4, "12.0.0.1") is None
    many = Privacy(internal_networks=[f"41.{i}.0.0/16" for i in range(0, 256, 2)])
    assert many.reason(IocType.IPV4, "41.100.3.4") == "own network (41.100.0.0/16)"
    assert many.reason(IocType.IPV4, "41.101.3.4") is None


#: rules with and without the organization's own networks and domains
RULES = [
    Privacy(),
    Privacy(send_internal=True),
    Privacy(internal_networks=["11.0.0.0/16", "2a03:2880::/32", "::ffff:203.1.0.0/112"]),
    Privacy(internal_domains=["corp.example.com"]),
]
#: addresses near every range's ends, carried ones among them
NEAR = [int(ipaddress.ip_network(n, strict=False)[i]) for n, _ in
        privacy_module._V4 + privacy_module._V6 for i in (0, -1, 1)
        if ipaddress.ip_network(n).num_addresses > 1 or i != 1]  # fmt: skip


#: an IPv6 address carrying an IPv4 one: ::a.b.c.d, IPv4-mapped, NAT64, 6to4, Teredo
CARRIERS = [
    lambda v4: v4,
    lambda v4: 0xFFFF << 32 | v4,
    lambda v4: 0x64FF9B << 64 | v4,
    lambda v4: 0x2002 << 112 | v4 << 80,
    lambda v4: 0x20010000 << 96 | (~v4 & 0xFFFFFFFF),
]


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(RULES),
    st.booleans(),
    st.integers(0, (1 << 128) - 1)
    | st.sampled_from(NEAR)
    | st.builds(lambda v4, carry: carry(v4), st.integers(0, (1 << 32) - 1) |
                st.sampled_from(NEAR).map(lambda n: n & 0xFFFFFFFF), st.sampled_from(CARRIERS)),
)  # fmt: skip
def test_the_screen_passes_only_addresses_never_withheld(rule: Privacy, v6: bool, n: int) -> None:
    """Where `screen` says no address starting with a byte is withheld, `reason` withholds
    none (ingest asks `reason` only of the others)."""
    if v6 or n >= 1 << 32:
        address, kind, mask = ipaddress.IPv6Address(n % (1 << 128)), IocType.IPV6, 120
    else:
        address, kind, mask = ipaddress.IPv4Address(n), IocType.IPV4, 24
    screen = rule.screen()[kind]
    if screen is None or not screen[int(address) >> mask]:
        assert rule.reason(kind, address.compressed) is None


def test_the_screen_of_names_flags_them_only_for_own_domains() -> None:
    assert [rule.screen()[IocType.DOMAIN] for rule in RULES] == [None, None, None, True]
    assert Privacy().screen()[IocType.IPV4][11] == 0  # 11/8 is global: not asked
    assert RULES[2].screen()[IocType.IPV4][11] == 1  # here 11.0/16 is the organization's


def test_names_and_own_domains() -> None:
    privacy = Privacy(internal_domains=["Acme-Corp.COM", "*.corp.example.org"])
    reason = privacy.reason
    assert reason(IocType.DOMAIN, "acme-corp.com") == "own domain (acme-corp.com)"
    assert reason(IocType.DOMAIN, "vpn.eu.acme-corp.com") == "own domain (acme-corp.com)"
    assert reason(IocType.DOMAIN, "notacme-corp.com") is None
    assert reason(IocType.DOMAIN, "x.corp.example.org") == "own domain (corp.example.org)"
    assert reason(IocType.DOMAIN, "example.org") is None
    home = "internal name (.home.arpa)"
    assert reason(IocType.DOMAIN, "printer.home.arpa") == home
    reverse = "special-use name (.arpa: a reverse lookup)"
    assert reason(IocType.DOMAIN, "5.1.168.192.in-addr.arpa") == reverse
    assert reason(IocType.DOMAIN, "abc.onion") == "special-use name (.onion)"
    assert reason(IocType.MD5, "44d88612fea8a8f36de82e1278abb02f") is None
    for public in ("local.com", "corp.com", "mylan.net", "foo.local.com", "home.arpa.com"):
        assert reason(IocType.DOMAIN, public) is None
    everything = Privacy(send_internal=True, internal_domains=["acme-corp.com"])
    assert everything.reason(IocType.DOMAIN, "acme-corp.com") is None
    assert everything.reason(IocType.IPV4, "10.0.0.1") is None
    assert everything.reason(IocType.DOMAIN, "x.corp.local") is None
    # no host anywhere has these: never sent, even so
    assert everything.reason(IocType.DOMAIN, "abc.onion") == "special-use name (.onion)"
    assert everything.reason(IocType.DOMAIN, "q.invalid") == "special-use name (.invalid)"


def test_bad_own_domains_and_networks_are_settings_errors() -> None:
    with pytest.raises(SettingsError, match=r"privacy\.internal_domains: 'not a domain'"):
        load_settings(environ={"ENRICHER_PRIVACY_INTERNAL_DOMAINS": "not a domain"})
    with pytest.raises(SettingsError, match=r"privacy\.internal_networks: '10\.0\.0\.0/33'"):
        load_settings(environ={"ENRICHER_PRIVACY_INTERNAL_NETWORKS": "10.0.0.0/33"})
    with pytest.raises(SettingsError, match=r"'co\.uk' is a public suffix"):
        load_settings(overrides={"privacy": {"internal_domains": ["co.uk"]}})
    s = load_settings(environ={"ENRICHER_PRIVACY_INTERNAL_DOMAINS": "a.com, b.org"})
    assert s.privacy.internal_domains == ("a.com", "b.org")


def test_lists_of_what_is_never_sent_add_up(tmp_path: Path) -> None:
    # a profile's lists, then the environment's, then the flags': none clears another
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[privacy]\ninternal_domains = ["acme.com"]\ninternal_networks = ["11.5.0.0/16"]\n'
    )
    s = load_settings(
        profile,
        environ={"ENRICHER_PRIVACY_INTERNAL_DOMAINS": "other.org",
                 "ENRICHER_PRIVACY_INTERNAL_NETWORKS": ""},
        overrides={"privacy": {"internal_domains": ["acme.com", "x.org"]}},
    )  # fmt: skip
    assert s.privacy.internal_domains == ("acme.com", "other.org", "x.org")
    assert s.privacy.internal_networks == ("11.5.0.0/16",)


def _inputs(tmp_path: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """One file per input format, each holding every internal and global value (the free
    text holds the names as a report would: its own domains and internal names included)."""
    internal, public = sorted(INTERNAL), sorted(GLOBAL)
    both = internal + public
    files: dict[str, tuple[Path, tuple[str, ...]]] = {}
    lines = tmp_path / "export.txt"
    lines.write_text("\n".join(both) + "\n")
    files["lines"] = (lines, ("--format", "lines"))
    csv = tmp_path / "conn.csv"
    rows = "".join(f"1,{a},{b}\n" for a, b in zip(both, both[::-1], strict=True))
    csv.write_text("ts,src,dst\n" + rows)
    files["csv"] = (csv, ("--format", "csv"))
    zeek = tmp_path / "dns.log"
    zeek.write_text(
        "#separator \\x09\n#fields\tts\tid.orig_h\tquery\tanswers\n"
        + "".join(f"1.0\t{a}\t{b}\t-\n" for a, b in zip(both, both[::-1], strict=True))
    )
    files["tsv"] = (zeek, ("--format", "auto"))
    eve = tmp_path / "eve.json"
    eve.write_bytes(
        b"".join(orjson.dumps({"src_ip": a, "dns": {"rrname": b}}) + b"\n"
                 for a, b in zip(both, both[::-1], strict=True))
    )  # fmt: skip
    files["ndjson"] = (eve, ("--format", "ndjson"))
    doc = tmp_path / "event.json"
    doc.write_bytes(orjson.dumps({"Event": {"Attribute": [{"value": v} for v in both]}}))
    files["json"] = (doc, ("--format", "json"))
    report = tmp_path / "report.md"
    report.write_text(
        "# Incident\n\nThe host " + ", ".join(internal) + " talked to " + ", ".join(public)
        + ".\nDefanged: 172.16.9[.]233 and dc01[.]corp[.]local.\n"
    )  # fmt: skip
    files["text"] = (report, ("--format", "text"))
    return files


def test_nothing_internal_reaches_the_api_in_any_input_format(tmp_path: Path) -> None:
    files = _inputs(tmp_path)
    internal = {_canonical(v) for v in INTERNAL}
    public = {_canonical(v) for v in GLOBAL}
    with emulator_process() as url:
        for name, (path, flags) in files.items():
            out = tmp_path / f"{name}.ndjson"
            proc = enricher(
                "run", str(path), *flags, "-o", str(out), "--base-url", url, "--rate", "0",
                "--no-cache", "--send-sha256", *OWN,
            )  # fmt: skip
            assert proc.returncode == 0, (name, proc.stderr)
            assert "holds" in proc.stderr, name
            sent = _sent(url)
            assert not sent & internal, (name, sent & internal)
            assert {r["ioc"] for r in read_ndjson(out)} == public, name
            withheld = {r["ioc"]: r["skipped"] for r in read_ndjson(Path(f"{out}.skipped.ndjson"))}
            assert set(withheld) <= internal, name
            # scanned text (free text, and cells or fields not chosen) takes no name without
            # a public suffix as an IOC at all: `.local` there is neither sent nor listed
            scanned = name in ("text", "csv", "tsv", "ndjson", "json")
            expected = {
                _canonical(k): v
                for k, v in INTERNAL.items()
                if not (scanned and v.startswith(("internal name", "special-use name")))
            }
            assert withheld == expected, name
            assert f"skipped (internal) {len(withheld)}" in proc.stderr, name


def test_send_internal_sends_them_and_warns(tmp_path: Path) -> None:
    src, out = tmp_path / "in.txt", tmp_path / "out.ndjson"
    src.write_text("10.0.0.1\ndc01.corp.local\n8.8.8.8\nx.onion\n")
    with emulator_process() as url:
        proc = enricher(
            "run", str(src), "-o", str(out), "--base-url", url, "--rate", "0", "--no-cache",
            "--send-internal", "-q",
        )  # fmt: skip
        sent = _sent(url)
    assert proc.returncode == 0, proc.stderr
    # said even with -q: a cron job's log shows that internal data went out
    assert "warning: privacy.send_internal is on" in proc.stderr
    assert {"10.0.0.1", "dc01.corp.local", "8.8.8.8"} <= sent
    assert "x.onion" not in sent
    assert len(read_ndjson(out)) == 3
    assert [r["ioc"] for r in read_ndjson(Path(f"{out}.skipped.ndjson"))] == ["x.onion"]


def test_skipped_ioc_says_where_it_was_seen_and_resume_does_not_repeat_it(
    tmp_path: Path,
) -> None:
    src, out, manifest = tmp_path / "in.txt", tmp_path / "out.ndjson", tmp_path / "run.json"
    src.write_text("# header\n8.8.8.8\n192.168.0.1\n192.168.0.1\n")
    first = enricher(
        "run", "--emulator", "--no-cache", str(src), "-o", str(out), "--with-source",
        "--manifest", str(manifest),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    skipped = Path(f"{out}.skipped.ndjson")
    assert read_ndjson(skipped) == [
        {"ioc": "192.168.0.1", "type": "ipv4", "skipped": "private address",
         "origin": {"file": str(src), "line": 3}}
    ]  # fmt: skip
    counts = orjson.loads(manifest.read_bytes())["counts"]
    assert counts["internal"] == 1 and counts["unique"] == 2 and counts["queried"] == 1
    assert orjson.loads(manifest.read_bytes())["outputs"]["skipped"] == str(skipped)
    again = enricher("run", "--emulator", "--no-cache", str(src), "-o", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert [r["ioc"] for r in read_ndjson(skipped)] == ["192.168.0.1"]
    assert len(read_ndjson(out)) == 1


async def test_the_library_yields_withheld_iocs_as_their_own_items() -> None:
    async with Emulator(EmulatorConfig()) as emu:
        settings = load_settings(overrides={"api": {"base_url": emu.base_url}})
        async with Enricher(settings) as e:
            items = [item async for item in e.enrich(["10.0.0.1", "8.8.8.8", "x.lan"])]
        sent = emu.keys()
    withheld = sorted(i["ioc"] for i in items if "skipped" in i)
    assert withheld == ["10.0.0.1", "x.lan"]
    assert sent["ip_batch"] == ["8.8.8.8"] and sent["domain_batch"] == []
    assert e.stats.internal == 2 and e.stats.invariant_holds
