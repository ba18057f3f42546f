"""The extractor's shortcuts answer as the general rules they stand for do."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.inputs.extract import _NAMES_ASCII, _dotted_names, _is_plain_name
from enricher.pipeline.normalize import is_plain_domain

# what a name the names pattern found is made of, in lower case
_NAME_CHARS = "ab9z0_-%+."


@settings(max_examples=500, deadline=None)
@given(
    st.text(_NAME_CHARS, min_size=1, max_size=12).flatmap(
        lambda short: st.sampled_from([short, short + "x" * 60 + short, "y" * 250 + short])
    )
)
def test_the_plain_name_test_is_the_domain_pattern(name: str) -> None:
    # the caller turns away a name without a dot, or ending in one (no top-level label), first
    if "." in name and not name.endswith("."):
        top = name.rpartition(".")[2]
        assert _is_plain_name(name, top) == is_plain_domain(name), name


def test_the_plain_name_test_on_names_of_each_rule() -> None:
    for name, want in [
        ("evil.com", True),
        ("_dmarc.evil.ru", True),
        ("a-b.c-d", True),
        ("-a.com", False),
        ("a-.com", False),
        ("a.-com", False),
        ("a.com-", False),
        ("a.c_m", False),
        ("a.123", False),
        ("1.2.3.4x", True),
        ("a..com", False),
        ("%s.com", False),
        ("a+b.com", False),
        ("x" * 63 + ".com", True),
        ("x" * 64 + ".com", False),
        ("a." * 125 + "com", True),
        ("a." * 126 + "com", False),
    ]:
        assert _is_plain_name(name, name.rpartition(".")[2]) is want, name
        assert is_plain_domain(name) is want, name


@settings(max_examples=500, deadline=None)
@given(st.text(" \n.@a1_%+-©/:", max_size=30))
def test_the_dotted_names_are_the_names_patterns_matches_with_a_dot(text: str) -> None:
    text = "\n" + text
    want = [m.span() for m in _NAMES_ASCII.finditer(text) if "." in m[1]]
    assert [m.span() for m in _dotted_names(text)] == want


def test_the_dotted_names_after_a_match_that_ends_before_a_dot() -> None:
    text = "\n a.b.@.c a@b 1@1@.1 .a@b .c.d x.y"
    assert [m[1] for m in _dotted_names(text)] == ["a.b", "c.d", "x.y"]
