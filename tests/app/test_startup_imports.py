"""`enricher` imports what a command uses: `--help` no engine, a run no server, no cluster,
no report, no other format and no Redis (each costs every process its start-up)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson
import pytest

from enricher.emulator import Emulator, EmulatorConfig

_CHECK = """
import contextlib, io, sys, orjson
from enricher.app.cli import main

def loaded(names):
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in sys.modules))

with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["--help"])
helped = loaded(sys.argv[1].split(","))
refused = main(["run", "--base-url", "gti.example", sys.argv[3]])  # a settings error
settings = ("yarl", "enricher.config.settings")
refused_loaded = loaded([n for n in sys.argv[1].split(",") if n not in settings])
code = main(["run", sys.argv[3], "-o", sys.argv[4], "--base-url", sys.argv[5], "--no-cache", "-q"])
print(orjson.dumps({"help": helped, "refused": [refused, refused_loaded],
                    "run": loaded(sys.argv[2].split(",")), "code": code}).decode())
"""

#: what `enricher --help` does without, and a run refused for its settings too (but those)
NOT_FOR_HELP = [
    "aiohttp", "yarl", "tenacity", "enricher.config.settings", "enricher.app.job",
    "enricher.pipeline.run", "enricher.inputs.read", "enricher.inputs.extract",
    "enricher.output.formats.base", "enricher.emulator.server", "enricher.state",
    "enricher.emulator.cli", "asyncio",
]  # fmt: skip
#: what a plain run against a server does without
NOT_FOR_RUN = [
    "aiohttp.web", "enricher.emulator.server", "enricher.emulator.answers", "enricher.cluster",
    "enricher.emulator.cli", "enricher.inputs.extract", "enricher.inputs.candidates",
    "enricher.inputs.delimited", "enricher.inputs.jsonfmt", "enricher.inputs.text",
    "dask", "distributed", "enricher.output.report", "enricher.output.formats.csv",
    "enricher.output.formats.ecs", "enricher.output.formats.stix",
    "enricher.output.formats.misp", "enricher.state.redis", "redis",
]  # fmt: skip


async def test_help_and_a_run_import_only_what_they_use(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("8.8.8.8\nevil.com\n44d88612fea8a8f36de82e1278abb02f\n")
    out = tmp_path / "out.ndjson"
    async with Emulator(EmulatorConfig()) as emu:
        args = [",".join(NOT_FOR_HELP), ",".join(NOT_FOR_RUN), str(src), str(out), emu.base_url]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHECK, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    assert orjson.loads(stdout) == {"help": [], "refused": [1, []], "run": [], "code": 0}
    assert len(out.read_bytes().splitlines()) == 3


def test_a_lazy_package_s_dir_is_a_module_s_and_its_names() -> None:
    """dir() of a package whose names load on first use: what a module's holds too (it
    held only __all__: no __doc__, __path__ or submodule, for completion and inspect)."""
    import enricher.emulator
    import enricher.inputs.suffixes
    import enricher.output.formats

    packages = (enricher, enricher.inputs, enricher.emulator, enricher.output.formats)
    for package in packages:
        names = dir(package)
        assert names == sorted(set(names))
        assert {*package.__all__, "__doc__", "__name__", "__path__"} <= set(names)
    assert "suffixes" in dir(enricher.inputs)


def test_a_command_builds_its_own_arguments_and_names_the_others() -> None:
    """`enricher CMD` builds CMD's arguments alone; what `enricher --help` lists and what a
    command parses are as with every command built."""
    import contextlib
    import io

    from enricher.app.cli import _command_word, build_parser

    def helped(parser: argparse.ArgumentParser, argv: list[str]) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            parser.parse_args(argv)
        return out.getvalue()

    assert _command_word(["--help"]) == ""
    assert _command_word(["run", "-o", "x", "lookup"]) == "run"
    assert helped(build_parser(""), ["--help"]) == helped(build_parser(), ["--help"])
    cases = (["run", "a.txt", "-o", "-", "--rate", "5"], ["emulator", "--port", "0"],
             ["lookup", "8.8.8.8", "--json"], ["deferred"], ["report", "out.ndjson"])  # fmt: skip
    for argv in cases:
        only = build_parser(_command_word(argv)).parse_args(argv)
        every = build_parser().parse_args(argv)
        assert vars(only) == vars(every), argv
        assert helped(build_parser(argv[0]), [argv[0], "--help"]) == helped(
            build_parser(), [argv[0], "--help"]
        )
    with pytest.raises(SystemExit):  # the others are named only: no arguments
        build_parser("run").parse_args(["emulator", "--port", "0"])


def test_a_lazy_function_imports_its_module_on_its_first_call() -> None:
    import subprocess

    check = (
        "import sys\n"
        "from enricher.lazy import lazy_function\n"
        "f = lazy_function('enricher.inputs.extract', 'extract')\n"
        "assert 'enricher.inputs.extract' not in sys.modules\n"
        "assert f.__name__ == 'extract'\n"
        "from enricher.inputs.extract import extract\n"
        "text = 'see evil[.]example.com and 1.2.3.4 here'\n"
        "assert f(text) == extract(text) and f(text)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
