"""What the extractor remembers of the tokens it has judged changes nothing it finds: a token
that gave nothing where it was first written still gives what another context makes of it
(the host of a URL under an alternative root, the name after a `$`, tcpdump's address and
port), and the table of such tokens stays bounded."""

from __future__ import annotations

import pytest

from enricher.inputs import extract as extract_module
from enricher.inputs.extract import extract

LONG_LABEL = "g" * 64  # longer than a label may be: the name after it is a domain

CASES = [
    # (written first where it gives nothing, then where it gives something, what that is)
    ("x7k2.bit", "http://x7k2.bit/r", ["x7k2.bit"]),
    (f"{LONG_LABEL}.evil.com", f"${LONG_LABEL}.evil.com", ["evil.com"]),
    ("9.1.2.3.4", "$9.1.2.3.4", ["1.2.3.4"]),
    ("1.2.3.4.443", "IP 1.2.3.4.443 > 10.0.0.5.51234: Flags", ["1.2.3.4", "10.0.0.5"]),
    ("readme.md", "see readme[.]md", ["readme.md"]),
    ("/download/evil.com", "evil.com", ["evil.com"]),
    ("/download/x7k2.bit", "http://x7k2.bit/r", ["x7k2.bit"]),
]


@pytest.mark.parametrize(("alone", "context", "want"), CASES)
def test_a_token_that_gave_nothing_still_gives_what_its_context_makes(
    alone: str, context: str, want: list[str]
) -> None:
    extract_module._forget()
    assert extract(alone) == []
    assert extract(context) == want
    assert extract(f"{alone} {alone}\n{context}") == want


def test_tokens_that_give_nothing_are_remembered_within_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extract_module._forget()
    assert extract("e.g. lb3.exe 8.1 lb3.exe 8.1") == []
    assert "lb3.exe" in extract_module._NEVER
    assert "8.1" not in extract_module._NEVER  # numbers are not kept: timestamps would fill it
    monkeypatch.setattr(extract_module, "_NAMES_MAX", 100)
    assert extract(" ".join(f"v{i}.exe {i}.1" for i in range(1_000))) == []
    assert 0 < len(extract_module._NEVER) <= 100
    assert "v999.exe" in extract_module._NEVER  # emptied when full, then filled again


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("get readme[.]md then README.md", []),
        ("get readme[.]md then _README.md_", []),
        ("get readme[.]md then readme.mdx", ["readme.md"]),
        ("get readme[.]md then xreadme.md", ["readme.md"]),
        ("get readme[.]md\nthen readme.md", ["readme.md"]),
        ("get readme[.]md then " + "x " * 1100 + "readme.md", []),  # a long line
    ],
)
def test_a_defanged_file_name_counts_unless_written_plain_on_its_line(
    line: str, want: list[str]
) -> None:
    # the line is searched for the name before its words are trimmed: the same answer
    assert extract(line) == want
