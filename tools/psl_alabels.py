"""Write `enricher/inputs/psl-alabels.json`: the A-labels of the public suffix list's IDN rules.

Building the suffix tables encodes each rule that is not ASCII (`三重.jp`) and each such
top-level label (`中国`) to its A-label with IDNA's codec, which is pure Python: ~0.3 M
instructions a label, 60% of the build, paid by every process. The file is a memo of that
function for the list `publicsuffixlist` ships; a label it lacks (a newer list) is encoded as
the tables are built, so it is never wrong, only slower. Run it again after upgrading
publicsuffixlist:

    python tools/psl_alabels.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from publicsuffixlist import __version__, encode_idn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enricher.inputs.suffixes import ALABELS_FILE, icann_rules  # noqa: E402


def main() -> int:
    texts: set[str] = set()
    for rule in icann_rules():
        texts.add(rule.lstrip("!"))
        texts.add(rule.rpartition(".")[2])
    alabels = {text: encode_idn(text) for text in sorted(texts) if not text.isascii()}
    ALABELS_FILE.write_bytes(orjson.dumps(alabels, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"{len(alabels)} A-labels of publicsuffixlist {__version__} in {ALABELS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
