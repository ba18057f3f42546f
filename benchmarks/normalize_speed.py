"""Micro-benchmark of `enricher.pipeline.normalize.normalize`: calls per second on three mixes.

    python benchmarks/normalize_speed.py [--seconds 2]

clean: md5, sha1, sha256, domains and dotted quads, one per call, as most input files hold;
messy: defanged text, URLs, e-mail addresses, IPv6, international names and garbage;
long garbage: strings near the length limit that must still be rejected in linear time.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from enricher.pipeline.normalize import MAX_LENGTH, normalize


def clean_mix(rng: random.Random, n: int) -> list[str]:
    words = ["mail", "cdn", "api", "login", "update", "evil", "example", "secure", "my_host"]
    tlds = ["com", "net", "org", "ru", "io", "co.uk", "xyz"]
    out: list[str] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            out.append(rng.randbytes(16).hex())
        elif kind == 1:
            out.append(rng.randbytes(20).hex().upper())
        elif kind == 2:
            out.append(rng.randbytes(32).hex())
        elif kind == 3:
            labels = rng.sample(words, rng.randint(1, 3))
            out.append(".".join([*labels, rng.choice(tlds)]))
        else:
            out.append(".".join(str(rng.randrange(256)) for _ in range(4)))
    return out


def messy_mix(rng: random.Random, n: int) -> list[str]:
    samples = [
        "hxxp://evil[.]com/payload.exe",
        "hXXps[:]//login(dot)example[.]org:8443/a?b=c",
        "1.2.3[.]4",
        "user[@]mail[.]example[.]com",
        "https://user:pw@Example.COM:8080/path#frag",
        "http://[2001:db8::1]:8080/x",
        "2001:0DB8:0000:0000:0000:0000:0000:0001",
        "fe80::1%eth0",
        "bücher.de",
        "пример.рф",
        "xn--bcher-kva.de",
        "example.com:443",
        "01.2.3.4",
        "not an ioc at all",
        "d41d8cd98f00b204e9800998ecf8427",
        "  localhost  ",
    ]
    return [rng.choice(samples) for _ in range(n)]


def long_garbage() -> list[str]:
    n = MAX_LENGTH
    return [
        "a" * n,
        ("a." * n)[: n - 1] + "!",
        ("1." * n)[:n],
        "-" * n,
        ("[.]" * n)[:n],
        " " * (n // 2) + "x" + " " * (n // 2 - 1),
        "é" * n,
        ("a" * 63 + ".") * (n // 64),
        "x" * (10 * 1024 * 1024),  # rejected by its length alone
    ]


def rate(items: list[str], seconds: float, call: Callable[[str], object]) -> float:
    calls = 0
    start = time.perf_counter()
    while True:
        for item in items:
            call(item)
        calls += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per mix")
    args = parser.parse_args()
    rng = random.Random(1)
    mixes = {
        "clean": clean_mix(rng, 10_000),
        "messy": messy_mix(rng, 10_000),
        "long garbage": long_garbage(),
    }
    for name, items in mixes.items():
        print(f"{name:>13}: {rate(items, args.seconds, normalize):>12,.0f} calls/s")


if __name__ == "__main__":
    main()
