"""IOCs and settings for runs of the engine against an `Emulator` in the test's own loop."""

from __future__ import annotations

import random
from typing import Any

from enricher.config.settings import Settings, load_settings
from enricher.emulator import Emulator


def settings_for(emu: Emulator, **sections: dict[str, Any]) -> Settings:
    base: dict[str, dict[str, Any]] = {
        "api": {"base_url": emu.base_url, "send_sha256": True},
        "limits": {"rate": 0, "concurrency": 4},
        "retry": {"backoff_base": 0.01, "backoff_max": 0.05, "attempts": 8},
        "network": {"read_timeout": 2.0, "total_timeout": 5.0},
        "pipeline": {"batch_deadline": 0.05},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return load_settings(environ={}, overrides=base)


def make_iocs(n: int, seed: int = 1) -> list[str]:
    """n distinct valid IOCs of every kind, in a realistic mix."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        kind = i % 6
        h = f"{rng.getrandbits(256):064x}"
        if kind == 0:
            out.append(h[:32])
        elif kind == 1:
            out.append(h[:40].upper())
        elif kind == 2:
            out.append(f"host{i}.example{i % 97}.com")
        elif kind == 3:
            out.append(f"11.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
        elif kind == 4:
            out.append(f"2a0b:4140::{i:x}")
        else:
            out.append(f"hxxp://evil{i}[.]example[.]net/x")
    return out
