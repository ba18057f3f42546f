"""Text built to make the extractor slow: each input is about 1 MB, so that anything
quadratic in its length (10^12 steps) would never finish, while linear work takes well under
a second. Sizes are bounded; nothing here is timed."""

from __future__ import annotations

import pytest

from enricher.inputs.extract import extract, extract_lines
from enricher.inputs.text import read_text

MB = 1 << 20
MD5 = "8b1fdfac8fe38356708b4bb683ff7cca"


def _fill(piece: str, size: int = MB) -> str:
    return piece * (size // len(piece))


HOSTILE = {
    "plus": _fill("+"),
    "plus and digits": _fill("+1"),
    "passthrough quad": _fill("++1.2.3[.]4++ "),
    "defanged dots": _fill("[.]"),
    "defanged words": _fill("a[.]"),
    "half brackets": _fill("[.") + _fill(".]"),
    "percent escapes": _fill("%3A"),
    "percent escapes around hex": _fill("%3A" + "a" * 31),
    "one long dotted token": _fill("x."),
    "one long dotted number": _fill("1."),
    "one long edged token": _fill("+a.b"),
    "dots": _fill("."),
    "slashes": _fill("/"),
    "backslashes": _fill("\\"),
    "path of names": _fill("a.com/"),
    "UNC of names": _fill("\\\\a.com"),
    "at signs": _fill("a@"),
    "colons": _fill(":"),
    "double colons": _fill("::"),
    "hex groups": _fill("1:"),
    "eight-group hints": _fill(":ab:cd:ef:01:"),
    "IPv4-mapped addresses": _fill("::ffff:192.0.2.1 "),
    "hex": _fill("a"),
    "hex runs of 31": _fill("a" * 31 + " "),
    "hex with fingerprint keys": _fill(f"imphash={MD5} "),
    "nested URLs": _fill("https://a.online/--/hXXps:/"),
    "nested schemes": _fill("http://"),
    "nested encoded URLs": _fill("http%3A%2F%2F"),
    "wildcards": _fill("*.") + "evil.com",
    "huge template": "server-{" + _fill("1,") + "}.evil.top",
    "dotted wildcard labels": _fill("*.a"),
    "file-like names on one defanged line": "c2[.]evil.com " + _fill("readme.md x[.]zip "),
    "versions": _fill("version 1.2.3.4 "),
    "hxxp": _fill("hxxp"),
    # the forms of the second attack
    "slash lists": _fill("a.b.com/"),
    "slash lists of quads": _fill("1.2.3.4/"),
    "products and slashes": _fill("OPR/1.2.3.4 "),
    "keys glued to IPv6": _fill("src:1::"),
    "keys glued to hex": _fill("ab:cd:"),
    "defanged colons before ports": _fill("1::2[:]3 "),
    "defanged colons": _fill("[:]"),
    "defanged colons after groups": _fill("1::2[:]"),
    "placeholders": _fill("%s."),
    "variables": _fill("$a."),
    "doubled at signs": _fill("a@@b."),
    "Markdown escapes": _fill("\\_a."),
    "zero-width characters": _fill("a\u200b.b"),
    "footnote marks": _fill("a.com\u00b2"),
    "doubled brackets": _fill("[[.]]"),
    "angle dots": _fill("a<.>"),
    "tcpdump pairs": _fill("1.2.3.4.5 > "),
    "terms and times": _fill("12:34:: "),
    "calls": _fill("a.com("),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_text_is_read_in_linear_time(name: str) -> None:
    text = HOSTILE[name]
    values, lines = extract_lines(text, 1)
    assert len(values) == len(lines)
    assert len(values) <= len(text)


def test_what_hostile_text_still_gives() -> None:
    assert set(extract(HOSTILE["wildcards"])) == {"evil.com"}
    assert set(extract(HOSTILE["huge template"])) == {"evil.top"}
    assert set(extract(HOSTILE["passthrough quad"])) == {"1.2.3.4"}
    assert set(extract(HOSTILE["IPv4-mapped addresses"])) == {"192.0.2.1"}  # the IPv4 address
    assert extract(HOSTILE["hex with fingerprint keys"]) == []
    assert set(extract(HOSTILE["file-like names on one defanged line"])) == {"c2.evil.com", "x.zip"}
    assert extract(HOSTILE["versions"]) == []


def test_a_hostile_file_is_read_block_by_block(tmp_path: object) -> None:
    import io

    data = (HOSTILE["defanged dots"] + "\n" + HOSTILE["nested URLs"] + "\n").encode()
    chunks = list(read_text(io.BufferedReader(io.BytesIO(data)), "hostile", max_line=4 * MB))
    assert sum(len(c.lines) for c in chunks) >= 1  # the nested URLs' hosts
