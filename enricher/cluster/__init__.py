"""One job spread over a Dask cluster (`enricher[dask]`): `--workers N` starts a local cluster
of N worker processes, `--cluster tcp://HOST:8786` uses an existing one.

    client (enricher run)                 workers
    ─────────────────────                 ───────
    a local cluster's fork server started as the command line asks for workers
    (forkserver.py), while the client loads, reads its settings and plans the inputs

    one read task per input, or per ────▶ read_input: decompress, decode, tell the format,
      block of a big plain one            extract, normalize, reject, dedupe within the input
      (blocks.py: cut at line ends)       (inputs/read.py, pipeline/ingest.py, as a run
                                          reads); each unique IOC hashed (CRC-32) into one
                                          of P parts: its owner
    one enrich task per part and wave ──▶ enrich_new: the part's IOCs of a wave of reads
      of reads (a read's share of a part   (at most 8 waves, in the reads' order) that its
       moves worker to worker as one        waves before did not have (the task before
       buffer, not through the client;      hands it those), enriched by `Enricher` under
       these tasks go before the reads      the settings' state: with `state.url =
       not started, so the parts enrich     redis://…` one rate limiter, one answer cache
       as the reads come in)                and one daily budget for all; of each
                                          endpoint's, those short of a whole batch wait
                                          for the part's next wave (the last sends all)
    results taken as they complete ◀──── records, failures, skipped, deferred IOCs (a
    and written by the client alone       wave's, whole) and each input's rejects (a
    (a block's rejects once the blocks    block's reject lines numbered within it)
    before it are, their lines counted
    on), to ONE output set, with the
    manifest and the summary

Guarantees: each unique IOC belongs to one part, so it is asked once for the whole job, and
comes out once: the client writes each task's result once, when it completes. A worker that
dies (SIGKILL, a lost host) loses nothing: Dask runs its tasks again elsewhere, and a part
run again gets what its first run had asked from the shared cache (a request answered but
not yet stored in it, a handful at most, is asked again). The invariant printed is the whole
job's (each part's wave keeps its own: the sum holds). A wave's results are held on its
worker until it is done, and a part's IOCs met so far until its next wave is: more parts
(`cluster.partitions`), less memory each. Once the last read is in, only its wave's new IOCs
are left to enrich (for logs, which keep naming the same hosts, next to none). A wave's task
run again (its worker lost) dedupes against the wave before, run again too if it was lost.

Why these choices: the API's quota, not the CPU, bounds the sending, so the parts share one
limiter through the state rather than each taking the whole rate; hashing IOCs to parts
(rather than giving each worker whole inputs to enrich) is what makes "asked once" hold when
the same IOC is in many inputs; the client writing (rather than parts committing files by
rename) keeps one output file in the usual schema that `--resume`, the report and the
formats read as they read any run's.

Not spread: standard input or a `/dev/fd/N` (a worker cannot read the client's), and what
needs the whole job's order of lines (`--with-source`); `--max-requests` is one process's
count (use `limits.daily_budget`, shared through the state). With a cluster, `--state redis://…` is
required: without one each worker would take the whole rate, and a part run again would
ask its IOCs again.

`parts.py` holds the tasks' work as plain functions (no Dask: Spark's `mapPartitions` or Ray
can run them); `client.py` the Dask side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from yarl import URL

from ..config.settings import Settings
from ..errors import SettingsError
from ..inputs import STDIN

__all__ = ["check_job", "without_password"]


def check_job(
    settings: Settings,
    *,
    inputs: Sequence[str],
    with_source: bool,
    max_requests: int | None,
    use_cache: bool,
) -> None:
    """SettingsError (exit 1, one line) for a job a cluster cannot run as asked."""
    why = None
    if not settings.state.shared:
        why = (
            "need a shared state: give --state redis://HOST:PORT/DB (every worker enriches "
            "under its one rate limiter, answer cache and budget)"
        )
    elif not inputs or STDIN in inputs:
        why = "read input files: a worker cannot read this process's standard input"
    elif own := [path for path in inputs if _this_process_only(path)]:
        # the job's own first reads may reach it (it worked) or not (a worker could not open
        # it: exit 1, and --resume could not either): refused, whatever the timing
        why = (
            f"read input files: a worker cannot read this process's open file {own[0]}"
            " (such as <(…)): save it to a file first"
        )
    elif with_source:
        why = "cannot say where each IOC was first seen: leave out --with-source"
    elif max_requests is not None:
        why = "count no --max-requests: set limits.daily_budget (shared through the state)"
    elif not use_cache:
        why = "share answers through the state: leave out --no-cache"
    elif settings.cluster.address and without_password(settings.state.url)[1] is not None:
        why = (
            "need the Redis password on each worker's host, not in the state URL (it would"
            " travel with the tasks): give it in ENRICHER_STATE_PASSWORD or"
            " state.password_file there and here"
        )
    elif settings.cluster.address and _credentials_in_urls(settings):
        why = (
            "need no credentials in network.proxy or api.base_url (they would travel with"
            " the tasks): give each worker's host its proxy in HTTPS_PROXY"
            " (network.trust_env), and the API's secrets in auth's variables or files"
        )
    if why is not None:
        raise SettingsError(f"--workers/--cluster {why}")


#: paths that name this process's own open files: another process opens its own, or none
_OWN_FILES = ("/dev/fd/", "/dev/stdin", "/proc/self/", "/proc/thread-self/")


def _this_process_only(path: str) -> bool:
    """Whether `path` names a file only this process has open (`<(zcat x.gz)`, /dev/stdin)."""
    mine = f"/proc/{os.getpid()}/"
    named = os.path.abspath(path).startswith((*_OWN_FILES, mine))
    return named or os.path.realpath(path).startswith(mine)


def _credentials_in_urls(settings: Settings) -> bool:
    """Whether the proxy's or the API's URL holds user info (a task's settings carry both)."""
    proxy = settings.network.proxy or ""
    urls = (settings.api.base_url, proxy if "://" in proxy else f"http://{proxy}")
    return any(URL(url).raw_user is not None for url in urls if url != "http://")


def without_password(url: str) -> tuple[str, str | None]:
    """`url` with no password in it (its user info's, or a `?password=`), and the password
    it held, if any: what a task may carry, and what the workers are given otherwise."""
    parsed = URL(url)
    password = parsed.password or parsed.query.get("password")
    if password is None:
        return url, None
    return str(parsed.with_password(None).without_query_params("password")), password
