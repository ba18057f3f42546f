"""The `enricher` command line: `run`, `lookup`, `report`, `deferred` and `emulator`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from .. import __version__
from ..config.argtypes import number
from ..errors import EXIT_FATAL, EXIT_USAGE, EnricherError, FatalError, OutputError, SettingsError
from ..inputs import add_arguments as add_input_arguments
from ..inputs import input_options, native
from ..output.console import json_logging, setup_logging
from ..output.formats import FORMATS

# The settings and the engine (aiohttp), and asyncio, are imported by the commands that use
# them, not by `enricher --help`, `report` or `emulator` (start-up instructions: see
# benchmarks/README.md).
if TYPE_CHECKING:
    import asyncio

    from ..config.settings import Settings

__all__ = ["build_parser", "main"]

log = logging.getLogger("enricher")


_positive_int = number(int, low=1, must="at least 1")
_non_negative_int = number(int, low=0, must="at least 0")
_any_rate = number(float, low=0.0, high=1_000_000.0, must="0 (no limit) or 0.001 to 1000000")


def _rate(text: str) -> float:
    """Requests a second: 0 (no limit), or at least one request in 1,000 s (a slower rate
    would never end a run)."""
    rate = _any_rate(text)
    if 0 < rate < 0.001:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or 0.001 to 1000000 (got {text})")
    return rate


def _duration(text: str) -> float:
    from ..config.settings import parse_duration

    try:
        return parse_duration(text)
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1, as every other usage error of enricher does (the
    README's exit codes: 2 means "finished with failures", which a scheduler may retry)."""

    def error(self, message: str) -> NoReturn:
        if json_logging():  # a scheduler reading JSON lines gets one, not a usage text
            _error(f"{self.prog}: {message}")
            self.exit(EXIT_USAGE)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_api_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of a command that talks to the API (`run`, `lookup`)."""
    p.add_argument("--config", metavar="FILE", help="settings profile (TOML)")
    p.add_argument("--base-url", metavar="URL", help="API prefix before the endpoint name")
    p.add_argument(
        "--emulator",
        action="store_true",
        help="start the embedded GTI emulator and run against it",
    )
    p.add_argument("--rate", type=_rate, metavar="REQ_PER_S", help="requests per second (0: none)")
    p.add_argument("--send-sha256", action="store_true", default=None, help="send sha256 keys")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the API's TLS certificate (warns; anyone on the path could read "
        "the credentials and forge answers)",
    )


def _add_privacy_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of what is never sent (`run`, `lookup`)."""
    privacy = p.add_argument_group(
        "privacy", "internal addresses and names, and your own domains, are never sent by default"
    )
    privacy.add_argument(
        "--internal-domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="your own domain: it and every name under it are never sent (repeatable)",
    )
    privacy.add_argument(
        "--internal-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="your own network: its addresses are never sent (repeatable)",
    )
    privacy.add_argument(
        "--send-internal",
        action="store_true",
        help="send private addresses, internal names and your own domains too (warns)",
    )


def _add_run_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help=_HELP["run"],
        description="Read IOCs (one per line), deduplicate, query the GTI API in batches, "
        "and write one NDJSON record per unique IOC.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="input files; - or none: stdin")
    p.add_argument("-o", "--output", default="-", metavar="OUT", help="output NDJSON (- = stdout)")
    _add_api_arguments(p)
    p.add_argument("--concurrency", type=_positive_int, metavar="N", help="requests in flight")
    p.add_argument("--batch-size", type=_positive_int, metavar="N", help="keys per request")
    p.add_argument("--failed", metavar="FILE", help="failures NDJSON (default OUT.failed.ndjson)")
    p.add_argument("--rejects", metavar="FILE", help="rejected input lines (OUT.rejects.ndjson)")
    p.add_argument("--deferred", metavar="FILE", help="IOCs not sent (OUT.deferred.ndjson)")
    p.add_argument(
        "--skipped", metavar="FILE", help="IOCs withheld as internal (OUT.skipped.ndjson)"
    )
    p.add_argument(
        "--with-source",
        action="store_true",
        help="records say where their IOC was first seen; the summary, how often it occurred",
    )
    p.add_argument(
        "--output-format",
        choices=FORMATS,
        default="ndjson",
        help="the records file's format (default ndjson; failures, rejects and deferred IOCs "
        "stay NDJSON): csv, ecs (Elasticsearch _bulk), stix (a STIX 2.1 bundle, needs "
        "enricher[stix]), stix-lines (bundles of at most 1,000 indicators, one a line), "
        "misp (a MISP event, needs enricher[misp])",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="errors only: no summary")
    add_input_arguments(p)
    _add_privacy_arguments(p)
    night = p.add_argument_group("nightly jobs")
    night.add_argument(
        "--job",
        metavar="NAME",
        help="the job this run belongs to: its next run asks first what this one deferred "
        "(default: named by the output file; a run on stdout belongs to none)",
    )
    night.add_argument("--resume", action="store_true", help="continue an interrupted run")
    night.add_argument("--force", action="store_true", help="replace an existing output")
    night.add_argument("--cache", metavar="PATH", help="the answer cache database (SQLite)")
    night.add_argument("--no-cache", action="store_true", help="neither read nor fill the cache")
    _add_state_argument(night)
    night.add_argument(
        "--cache-only", action="store_true", help="send nothing: what the cache lacks is deferred"
    )
    night.add_argument(
        "--max-age", type=_duration, metavar="DURATION", help="use cached answers younger than this"
    )
    night.add_argument(
        "--max-requests", type=_non_negative_int, metavar="N", help="send at most N requests"
    )
    night.add_argument(
        "--max-rejects",
        type=_non_negative_int,
        default=100_000,
        metavar="N",
        help="reject lines written per input at most (default 100000); the rest are counted",
    )
    night.add_argument("--manifest", metavar="FILE", help="write a JSON manifest of the run")
    night.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="read and enrich over a local Dask cluster of N worker processes (default 1: "
        "this process alone); needs --state redis://… and enricher[dask]",
    )
    night.add_argument(
        "--cluster",
        metavar="URL",
        help="read and enrich over the Dask cluster whose scheduler is at URL "
        "(tcp://HOST:8786); needs --state redis://…",
    )
    night.add_argument("--log-format", choices=["text", "json"], default="text")
    night.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a live progress line on stderr (default: on a terminal)",
    )
    p.set_defaults(func=_run)


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from ..config.settings import ApiSettings

    api: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if args.base_url:
        api["base_url"] = args.base_url
    if args.send_sha256:
        api["send_sha256"] = True
    if args.batch_size:
        api.update(ApiSettings.one_batch_size(args.batch_size))
    if args.rate is not None:
        limits["rate"] = args.rate
    if args.concurrency:
        limits["concurrency"] = args.concurrency
    network = {"verify_tls": False} if args.insecure else {}
    privacy: dict[str, Any] = {"send_internal": True} if args.send_internal else {}
    if args.internal_domain:  # added to the profile's lists (see settings)
        privacy["internal_domains"] = args.internal_domain
    if args.internal_network:
        privacy["internal_networks"] = args.internal_network
    cluster: dict[str, Any] = {}
    if getattr(args, "workers", None):
        cluster["workers"] = args.workers
    if getattr(args, "cluster", None):
        cluster["address"] = args.cluster
    return {
        "api": api,
        "limits": limits,
        "network": network,
        "privacy": privacy,
        "cluster": cluster,
        **_state_overrides(args),
    }


def _settings(args: argparse.Namespace) -> Settings:
    """The settings of a command that talks to the API: its profile (the emulator's with
    --emulator), the environment, then its flags."""
    from ..config.settings import config_path, load_settings

    config = args.config
    if config is None and args.emulator:
        config = config_path("emulator.toml")
    return load_settings(config, overrides=_overrides(args))


def _run(args: argparse.Namespace) -> int:
    _check_state(args)
    settings = _settings(args)
    from .job import Job, run_job  # after the settings: an error in them needs no engine

    job = Job(
        inputs=args.inputs,
        reading=input_options(args),
        output=args.output,
        failed=args.failed,
        rejects=args.rejects,
        deferred=args.deferred,
        skipped=args.skipped,
        emulator=args.emulator,
        quiet=args.quiet,
        resume=args.resume,
        force=args.force,
        use_cache=not args.no_cache,
        cache_path=args.cache,
        cache_only=args.cache_only,
        max_age=args.max_age,
        max_requests=args.max_requests,
        max_rejects=args.max_rejects,
        job=args.job,
        manifest=args.manifest,
        log_json=args.log_format == "json",
        progress=args.progress,
        with_source=args.with_source,
        output_format=args.output_format,
    )
    setup_logging(json=job.log_json, quiet=job.quiet)
    import asyncio

    with asyncio.Runner(loop_factory=loop_factory(settings.pipeline.event_loop)) as runner:
        return runner.run(run_job(job, settings))


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the event loop: uvloop's (with "auto", when installed), or None for the
    standard library's."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SettingsError(
                "pipeline.event_loop = uvloop, but uvloop is not installed "
                "(pip install 'enricher[fast]')"
            ) from None
        return None
    from ..api.tls import quiet_abandoned_handshakes

    def factory() -> asyncio.AbstractEventLoop:
        loop = uvloop.new_event_loop()
        loop.set_exception_handler(quiet_abandoned_handshakes)
        return loop

    return factory


def _add_deferred_parser(sub: Any) -> None:
    p = sub.add_parser(
        "deferred",
        help=_HELP["deferred"],
        description="What each job deferred (budget or quota spent, run stopped) and its next "
        "run will ask first: a line per job and API identity; with --job, that job's IOCs as "
        "NDJSON on stdout. Spent quotas are listed too (--clear-quota forgets them).",
    )
    p.add_argument("--job", metavar="NAME", help="list this job's IOCs, one NDJSON line each")
    p.add_argument("--config", metavar="FILE", help="settings profile (TOML): its cache path")
    p.add_argument("--cache", metavar="PATH", help="the state file (SQLite)")
    _add_state_argument(p)
    p.add_argument(
        "--clear-quota",
        action="store_true",
        help="forget every spent quota (a 429 with a long Retry-After) the state file holds, "
        "so that the next run sends again",
    )
    p.set_defaults(func=_deferred)


def _deferred(args: argparse.Namespace) -> int:
    from ..config.settings import load_settings
    from ..state.deferred import list_deferred

    _check_state(args)
    settings = load_settings(args.config, overrides=_state_overrides(args))
    if settings.state.shared:
        import asyncio

        from ..state.deferred import list_shared_deferred

        return asyncio.run(
            list_shared_deferred(settings, job=args.job, clear_quota=args.clear_quota)
        )
    return list_deferred(
        args.cache or settings.state.sqlite_path or settings.cache.path or None,
        job=args.job,
        clear_quota=args.clear_quota,
    )


def _add_state_argument(p: Any) -> None:
    p.add_argument(
        "--state",
        metavar="URL",
        help="where the state lives: sqlite:///PATH (the state file, the default) or "
        "redis://HOST:PORT/DB, shared by every job of the API key (enricher[redis])",
    )


def _check_state(args: argparse.Namespace) -> None:
    if args.state is not None and args.cache is not None:
        raise SettingsError("--cache and --state both say where the state is: give one")


def _state_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {"state": {"url": args.state} if args.state is not None else {}}


def _add_lookup_parser(sub: Any) -> None:
    p = sub.add_parser(
        "lookup",
        help=_HELP["lookup"],
        description="Ask the GTI API about the IOCs given (normalized, deduplicated, from the "
        "cache when it has them, under the rate limiter) and print a table, or with --json "
        "one JSON line per argument.",
    )
    p.add_argument("iocs", nargs="+", metavar="IOC", help="hashes, domains, IPs, URLs")
    p.add_argument("--json", action="store_true", help="one JSON line per argument")
    _add_api_arguments(p)
    _add_privacy_arguments(p)
    p.add_argument("--cache", metavar="PATH", help="the answer cache database (SQLite)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor fill the cache")
    _add_state_argument(p)
    p.add_argument(
        "--max-age", type=_duration, metavar="DURATION", help="use cached answers younger than this"
    )
    p.set_defaults(func=_lookup, batch_size=None, concurrency=None)


def _lookup(args: argparse.Namespace) -> int:
    if args.cache is not None and args.no_cache:
        raise SettingsError("--cache and --no-cache contradict each other")
    _check_state(args)
    settings = _settings(args)
    from .lookup import Lookup, run_lookup  # after the settings, as in `_run`

    lookup = Lookup(
        iocs=args.iocs,
        as_json=args.json,
        emulator=args.emulator,
        use_cache=not args.no_cache,
        cache_path=args.cache,
        max_age=args.max_age,
    )
    setup_logging(json=False, quiet=True)
    import asyncio

    with asyncio.Runner(loop_factory=loop_factory(settings.pipeline.event_loop)) as runner:
        return runner.run(run_lookup(lookup, settings))


def _add_report_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help=_HELP["report"],
        description="Read an NDJSON output (and the failures, deferred and manifest files "
        "beside it) and write one HTML page: verdict and classification counts and charts, "
        "the malicious and suspicious IOCs, failures by reason, the run's figures. The page "
        "has no script and fetches nothing.",
    )
    p.add_argument("output", metavar="OUT", help="the records of a run (NDJSON)")
    p.add_argument(
        "-o", dest="report", metavar="REPORT", help="the page (default: OUT with .html; - = stdout)"
    )
    p.add_argument(
        "--manifest", metavar="FILE", help="the run's manifest (default: the one beside OUT)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing REPORT")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from ..output.report import write_report

    where = write_report(args.output, args.report, manifest=args.manifest, force=args.force)
    if where != "standard output":
        print(f"enricher: report written to {where}", file=sys.stderr)
    return 0


#: each command's line in `enricher --help`
_HELP = {
    "run": "enrich IOCs from files or stdin into NDJSON",
    "lookup": "look a few IOCs up now: a table, or JSON lines",
    "report": "a run's results as one self-contained HTML page",
    "deferred": "list the IOCs deferred jobs are waiting to ask",
    "emulator": "run a local emulator of the GTI API",
}


def _add_emulator_parser(sub: Any) -> None:
    from ..emulator.cli import add_parser

    add_parser(sub, help=_HELP["emulator"])


_ADD = {
    "run": _add_run_parser,
    "lookup": _add_lookup_parser,
    "report": _add_report_parser,
    "deferred": _add_deferred_parser,
    "emulator": _add_emulator_parser,
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line. With `command` (the first word of the command line that is not an
    option, "" for none), only that command's arguments are built, the others only named
    with their help, all that `enricher --help` lists: a run does not pay for the emulator's
    flags (its module's import) and the other commands' (19 M instructions of 1,147 M)."""
    parser = _Parser(
        prog="enricher",
        description="Bulk IOC reputation enrichment against the Cybereason GTI API.",
    )
    # which text extraction runs: the install's line about the C module is hidden by pip
    finders = "C" if native.dotted_names is not None else "pure-Python"
    version = f"enricher {__version__} ({finders} text extraction)"
    parser.add_argument("--version", action="version", version=version)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add in _ADD.items():
        if command is None or name == command:
            add(sub)
        else:
            sub.add_parser(name, help=_HELP[name])
    return parser


def _command_word(argv: Sequence[str]) -> str:
    """The command `argv` names: its first word that is not an option (`enricher` has no
    option that takes a value), "" for none (`enricher --help`)."""
    return next((word for word in argv if not word.startswith("-")), "")


def _standard_streams() -> list[str]:
    """A standard stream the caller closed (`2>&-`, `<&-`, `>&-`) is opened on /dev/null, so
    the run behaves as with `2>/dev/null`: nothing fails on a missing stream, and a file the
    run opens cannot take its number (and get the progress line or the records). Returns
    the names of those that were closed."""
    closed = []
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - lives as long as the process
            closed.append(name)
    return closed


def main(argv: Sequence[str] | None = None) -> int:
    if _worker_starting():
        # a script with no `if __name__ == "__main__":` guard, run again by a local
        # cluster's worker as it starts: its job is the script's first process's, which
        # says why its workers did not start, in one line (`cluster.client`)
        raise SystemExit(EXIT_USAGE)
    return _main(argv, _standard_streams())


def _worker_starting() -> bool:
    """Whether this process is a multiprocessing child importing its parent's main script."""
    process = sys.modules.get("multiprocessing.process")
    return process is not None and bool(getattr(process.current_process(), "_inheriting", False))


def _early_logging(argv: Sequence[str]) -> None:
    """Logging as the command line asks for it, before the command line is read: with
    `--log-format json`, a usage or settings error is a JSON line too."""
    json = False
    for i, arg in enumerate(argv):
        if arg == "--log-format" and i + 1 < len(argv):
            json = argv[i + 1] == "json"
        elif arg.startswith("--log-format="):
            json = arg.partition("=")[2] == "json"
    setup_logging(json=json, quiet=False)


def _main(argv: Sequence[str] | None, closed: list[str]) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    _early_logging(words)
    if any(word.startswith("--workers") for word in words):  # a job of one imports no cluster
        from ..cluster.forkserver import asked_for_workers, start_fork_server

        if asked_for_workers(words):
            start_fork_server()  # its start overlaps the job's own (`cluster.forkserver`)
    try:
        return _command(argv, closed)
    finally:
        if "enricher.cluster.forkserver" in sys.modules:  # none left behind, whatever the end
            from ..cluster.forkserver import stop_fork_server

            stop_fork_server()


def _command(argv: Sequence[str] | None, closed: list[str]) -> int:
    try:
        # under load, importing the commands (the emulator's) takes a second or two: a
        # SIGTERM then is an interruption too, not a traceback
        words = sys.argv[1:] if argv is None else argv
        parser = build_parser(_command_word(words))
        args = parser.parse_args(words)
        if "stdout" in closed and getattr(args, "output", None) == "-":
            _error("standard output is closed: the records go nowhere", prefix="warning: ")
        code: int = args.func(args)
    except FatalError as exc:
        step = exc.next_step if isinstance(exc, OutputError) else None
        _error(str(exc) + (f"; {step}" if step else ""))
        return EXIT_FATAL
    except EnricherError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except Exception as exc:  # a bug of ours: one line, the traceback kept in a file
        _error(f"internal error ({_one_line(exc)}); {_keep_traceback(exc)}")
        return EXIT_FATAL
    return code


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:199] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _keep_traceback(exc: BaseException) -> str:
    """Where the traceback of an unexpected exception was written, and what to do next."""
    import tempfile
    import traceback

    then = "a run goes on from where it stopped with --resume"
    try:
        fd, path = tempfile.mkstemp(prefix="enricher-traceback-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as file:
            file.write("".join(traceback.format_exception(exc)))
    except OSError:
        return f"{then}; report it with the command that ran"
    return f"the traceback is in {path} (report it); {then}"


def _error(text: str, *, prefix: str = "error: ") -> None:
    """One line on stderr, as a log line: text (`enricher: error: ...`) or JSON."""
    from ..config.settings import redact_url

    log.error("%s%s", prefix, redact_url(text))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
