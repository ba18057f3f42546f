"""The text extractor's shortcut for new names answers as the two rules it stands for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from enricher.inputs.suffixes import (
    is_file_or_program_name,
    is_program_name,
    looks_like_file_name,
)

# labels each rule looks at (file-like and host-first suffixes, code and package labels,
# hash-length labels, versions), other labels, and capitals
LABELS = [
    "a", "evil", "com", "net", "org", "io", "id", "self", "user", "location", "host", "zip",
    "cab", "pl", "rs", "sh", "app", "main", "lib", "cdn", "www", "transfer", "asp",
    "microsoft", "system", "3", "v", "x" * 32, "0" * 40, "ab" * 16, "f" * 39,
]  # fmt: skip
written_names = st.lists(
    st.sampled_from(LABELS).flatmap(lambda w: st.sampled_from([w, w.upper(), w.title()])),
    min_size=2,
    max_size=5,
).map(".".join)


@given(written_names)
def test_shortcut_answers_as_both_rules(written: str) -> None:
    name = written.lower()
    expected = looks_like_file_name(name, written) or is_program_name(written, name)
    assert is_file_or_program_name(name, written) is expected


def test_shortcut_examples() -> None:
    assert is_file_or_program_name("microsoft.net", "Microsoft.NET")
    assert is_file_or_program_name("invoice.zip", "invoice.zip")
    assert is_file_or_program_name("user.id", "user.id")
    assert is_file_or_program_name(f"{'a' * 32}.com", f"{'a' * 32}.com")
    assert not is_file_or_program_name("evil.com", "evil.com")
    assert not is_file_or_program_name("login.evil-bank.net", "Login.Evil-Bank.Net")
