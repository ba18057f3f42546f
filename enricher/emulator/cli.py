"""`enricher emulator`: run the local GTI emulator until SIGINT or SIGTERM.

Every `EmulatorConfig` knob is a flag. Secrets can come from the environment instead of the
command line (where other users could see them): ENRICHER_EMULATOR_TOKEN and
ENRICHER_EMULATOR_LOGIN (`user:password`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from pathlib import Path
from typing import Any

from ..config.argtypes import number
from .config import CONTENT_FAULTS, WHOLE_RESPONSE_FAULTS, EmulatorConfig, RetryAfter

__all__ = ["add_parser", "config_from_args", "run"]

_FAULT_HELP = {
    "server_error_rate": "answer 500/502/503/504 instead",
    "drop_rate": "close the connection after reading the request, sending nothing",
    "hang_rate": "never answer (until the client gives up)",
    "malformed_json_rate": "answer 200 with the JSON cut short",
    "error_body_rate": 'answer 200 with {"message": ..., "status": "ERROR"}',
    "missing_key_rate": "per key: leave its entry out of the answer",
    "duplicate_rate": "add a second copy of one entry",
    "extra_rate": "add an entry for a key nobody asked",
    "shuffle_rate": "answer in shuffled order",
    "upper_echo_rate": "echo hashes and domains in upper case",
}


_probability = number(float, low=0.0, high=1.0, must="a probability between 0 and 1")
_milliseconds = number(float, low=0.0, must="a number of milliseconds >= 0")
_positive_int = number(int, low=1, must=">= 1")
_port = number(int, low=0, high=65535, must="0..65535 (0: any free port)")


def _credentials(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not (sep and user and password):
        raise argparse.ArgumentTypeError("must be USER:PASSWORD")
    return user, password


def add_parser(subparsers: Any, help: str) -> argparse.ArgumentParser:
    """Register the `emulator` subcommand on the main command's subparsers (`help`: its line
    in `enricher --help`)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "emulator",
        help=help,
        description=(
            "Serve a local, deterministic emulator of the GTI classification API "
            "(POST /rest/classification_v1/{file,domain,ip}_batch) until Ctrl-C. "
            "Stats at GET /emulator/stats, the keys received at GET /emulator/keys; POST"
            " /emulator/reset clears them."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=_port, default=8080, help="port to bind; 0 picks a free one (default 8080)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")

    g = p.add_argument_group("latency and limits")
    g.add_argument("--latency-ms", type=_milliseconds, default=0.0, help="fixed delay per response")
    g.add_argument(
        "--jitter-ms",
        type=_milliseconds,
        default=0.0,
        help="delay is uniform in [latency-jitter, latency+jitter]",
    )
    g.add_argument(
        "--rate-limit",
        type=_positive_int,
        metavar="N",
        help="accept at most N requests in any 1-second window; more get 429",
    )
    g.add_argument(
        "--retry-after",
        choices=[m.value for m in RetryAfter],
        default=RetryAfter.SECONDS.value,
        help="how a 429 says when to retry (default: seconds)",
    )
    g.add_argument(
        "--max-batch", type=_positive_int, metavar="N", help="more keys per request get 413"
    )
    g.add_argument(
        "--no-sha256",
        dest="accept_sha256",
        action="store_false",
        help="refuse sha256 keys in file_batch (unknown key name, 400)",
    )

    g = p.add_argument_group("faults (probabilities 0..1; the first five sum to at most 1)")
    for knob in (*WHOLE_RESPONSE_FAULTS, *CONTENT_FAULTS):
        g.add_argument(
            "--" + knob.replace("_", "-"),
            dest=knob,
            type=_probability,
            default=0.0,
            metavar="P",
            help=_FAULT_HELP[knob],
        )
    g.add_argument(
        "--refuse-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a batch holding this key gets 400 naming no cause (repeatable)",
    )
    g.add_argument(
        "--refuse-keys-file",
        type=Path,
        metavar="PATH",
        help="more keys to refuse, one per line",
    )

    g = p.add_argument_group("authentication (default: none)")
    g.add_argument(
        "--api-token",
        default=os.environ.get("ENRICHER_EMULATOR_TOKEN"),
        metavar="TOKEN",
        help="require this token (env ENRICHER_EMULATOR_TOKEN)",
    )
    g.add_argument(
        "--token-header",
        default="Authorization",
        metavar="NAME",
        help="header carrying the token; Authorization wants 'Bearer <token>'",
    )
    g.add_argument(
        "--login",
        type=_credentials,
        # argparse runs `type` on a string default too, so a bad variable is a clean error.
        default=os.environ.get("ENRICHER_EMULATOR_LOGIN") or None,
        metavar="USER:PASSWORD",
        help="enable POST /login.html with these credentials (env ENRICHER_EMULATOR_LOGIN)",
    )
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The config the flags describe. Raises ValueError when they do not fit together."""
    refuse = list(args.refuse_key)
    if args.refuse_keys_file is not None:
        try:
            text = args.refuse_keys_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read --refuse-keys-file: {exc}") from None
        refuse += [line.strip() for line in text.splitlines() if line.strip()]
    return EmulatorConfig(
        seed=args.seed,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        rate_limit=args.rate_limit,
        retry_after=RetryAfter(args.retry_after),
        max_batch=args.max_batch,
        accept_sha256=args.accept_sha256,
        **{knob: getattr(args, knob) for knob in (*WHOLE_RESPONSE_FAULTS, *CONTENT_FAULTS)},
        refuse_keys=frozenset(refuse),
        api_token=args.api_token or None,
        token_header=args.token_header,
        login_credentials=args.login,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 1 for bad flags or if it cannot bind."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"enricher emulator: error: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except KeyboardInterrupt:  # a Ctrl-C before the signal handlers were in place
        return 0
    except OSError as exc:
        print(
            f"enricher emulator: error: cannot listen on {args.host}:{args.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


async def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    from .server import Emulator  # not for `enricher --help` or a run: aiohttp.web

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Emulator(config, host=host, port=port) as emulator:
        # Everything made so far (modules, tables) lives as long as the process: keep it out
        # of the cyclic collector, whose full passes otherwise stall the loop for tens of ms
        # and would show as jitter in the rate window.
        gc.freeze()
        # Scripts start us with --port 0 and read the port from this line.
        print(f"GTI emulator listening on {emulator.base_url}", flush=True)
        await stop.wait()
