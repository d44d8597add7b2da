"""Benchmark Linkwatch's ICMP engine against fping, in the lab, judged by the responder's truth.

Builds a lab of its own (prefix ``lwbench``: the gateway and one site, ``ftb2``), whose
responder holds every reply ``--delay-s`` (50 ms) and drops ``--loss`` (10 %) of the
requests, seeded. For each N (100, 1,000, 5,000) the tools ping the same N addresses of the
bulk range 10.200.128.0/17 (all answered by the responder) from the site's namespace, one
after the other, ``--count`` (20) requests each, each waited ``--timeout-s``, requests to one
target ``N / --rate`` seconds apart (at least 1 ms):

- ``fping``: paced as the engine is, at most ``--burst-rate`` requests a second (``-p``,
  ``-i``); the engine: ``spacing_s`` and ``max_send_rate_pps``;
- ``fping-i0``: fping's cheapest mode (``-i 0``: each sweep sent as one burst), the
  reference for the CPU goal;
- fping 5.1 aborts when it needs more than its 65,536 sequence numbers within 10 s; it is
  then run again with twice the period (up to three times), and the table shows the period
  it ran with.

Each request the tool sent is matched to the responder's truth record (the k-th request
to an address arrives k-th), so a tool's loss pattern and each RTT are compared with what
the responder really did. Per tool and N it reports: wall time, CPU seconds per 1,000
probes, peak RSS, measured minus true loss, mean RTT minus true hold, targets that disagree
with the truth (a different loss pattern, or a mean RTT more than 0.05 ms from the mean true
hold), and the request rate the responder saw. Each tool runs ``--repeat`` (3) times per N,
interleaved; every run is a row and must be right, and CPU is compared by each tool's median
(one run's CPU moves by about 15 % on a shared 2-core machine). The last line printed is
one JSON object.

Needs root and fping. Bounded: every child has a timeout; the lab is torn down at the end.
``--quick`` runs N = 100 only (well under a minute).

    sudo python bench/icmp_engine.py [--quick] [--sizes 100,1000,5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.lab.lab import Lab
from monitor.lab.topology import bulk_targets
from monitor.lab.truth import TruthRecord, by_destination

SITE = "ftb2"
RTT_TOLERANCE_S = 0.05e-3
MIN_PERIOD_S = 0.001
TIME = "/usr/bin/time"
CHILD_TIMEOUT_S = 300.0
TOOLS = ("fping", "fping-i0", "linkwatch")
GOAL_PROBES_PER_S = 20_000
GOAL_CPU_RATIO = 2.0


@dataclass(frozen=True, slots=True)
class Run:
    """One tool's run over N targets, compared with the truth.

    Attributes:
        tool: ``linkwatch``, ``fping`` (paced like the engine) or ``fping-i0`` (no pacing).
        targets: N.
        probes: requests the tool was asked to send (N x count).
        period_s: seconds between two requests to one target (fping may need a longer
            one than asked, see ``tool_errors``).
        wall_s: the tool's wall time (the engine: its measuring phase; fping: the process).
        cpu_s: CPU seconds (user + system) of the same span.
        cpu_s_process: CPU seconds of the whole process (interpreter start included).
        peak_rss_kib: peak resident memory of the tool's process, KiB (``None``: unknown).
        request_rate_pps: requests a second as the responder saw them arrive.
        seen_by_responder: requests the responder saw.
        loss_error: measured minus true loss over all probes (ratio).
        max_target_loss_error: largest |measured - true| loss of one target (ratio).
        rtt_error_mean_s: mean over all answered requests of RTT minus true hold, seconds.
        rtt_error_p99_s: 99th percentile of that difference, seconds.
        rtt_error_max_s: largest difference, seconds.
        loss_disagree: targets whose loss pattern differs from the truth.
        rtt_disagree: targets whose mean RTT is more than 0.05 ms from the mean true hold.
        tool_errors: the tool's own diagnostics (socket drops, stray replies...).
        worst_targets: the three targets whose mean RTT is furthest from the truth.
    """

    tool: str
    targets: int
    probes: int
    period_s: float
    wall_s: float
    cpu_s: float
    cpu_s_process: float
    peak_rss_kib: int | None
    request_rate_pps: float
    seen_by_responder: int
    loss_error: float
    max_target_loss_error: float
    rtt_error_mean_s: float | None
    rtt_error_p99_s: float | None
    rtt_error_max_s: float | None
    loss_disagree: int
    rtt_disagree: int
    tool_errors: dict[str, Any]
    worst_targets: list[dict[str, Any]]

    @property
    def cpu_per_1000_s(self) -> float:
        """CPU seconds per 1,000 probes."""
        return self.cpu_s / self.probes * 1000

    @property
    def disagree(self) -> int:
        """Targets that disagree with the truth on loss or on RTT."""
        return self.loss_disagree + self.rtt_disagree


# -- the engine's child process --------------------------------------------------------------


async def _engine_child(plan: dict[str, Any]) -> dict[str, Any]:
    import resource

    from monitor.agent.runner import tune_garbage_collector
    from probes.icmp.engine import IcmpEngine

    tune_garbage_collector()  # as the agent process does at start-up
    engine = await IcmpEngine.open(max_send_rate_pps=plan["burst_rate"])
    try:
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.perf_counter()
        outcomes = await asyncio.gather(
            *(
                engine.ping_round(
                    address,
                    4,
                    count=plan["count"],
                    spacing_s=plan["period_s"],
                    timeout_s=plan["timeout_s"],
                )
                for address in plan["targets"]
            )
        )
        wall_s = time.perf_counter() - wall0
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        counters = asdict(engine.counters())
    finally:
        engine.close()
    cpu_s = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "counters": counters,
        "rtts_s": {o.address: list(o.rtts_s) for o in outcomes},
    }


def _child_main(arg: str) -> int:
    plan = json.loads(Path(arg).read_text(encoding="utf-8"))
    print(json.dumps(asyncio.run(_engine_child(plan))))
    return 0


# -- running the tools ---------------------------------------------------------------------


def _run_measured(
    lab: Lab, argv: list[str], timeout_s: float
) -> tuple[str, str, float, float, int | None]:
    """Run ``argv`` in the site's namespace; return ``(stdout, stderr, wall_s, cpu_s, rss)``.

    CPU (user + system) comes from ``wait4``, which includes the reaped children; the peak
    RSS (KiB) from ``/usr/bin/time -f %M`` wrapping the tool, because a child forked from
    this (large) Python process would report this process's RSS as its own high-water mark.
    ``rss`` is ``None`` when ``/usr/bin/time`` is missing.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file,
    ):
        wrapped = [TIME, "-f", "%M", "-o", rss_file.name, *argv] if Path(TIME).exists() else argv
        started = time.perf_counter()
        proc = subprocess.Popen(
            lab.command_in(SITE, wrapped), stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"{argv[0]} ran past {timeout_s:g} s and was killed")
            time.sleep(0.005)
        wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
        rss_text = rss_file.read().strip().splitlines()
    rss = int(rss_text[-1]) if rss_text and rss_text[-1].isdigit() else None
    return stdout, stderr, wall_s, usage.ru_utime + usage.ru_stime, rss


def run_fping(
    lab: Lab, targets: list[str], count: int, period_s: float, interval_s: float, timeout_s: float
) -> tuple[dict[str, list[float | None]], float, float, int | None, dict[str, Any]]:
    """Run fping in the site's namespace; return its per-target RTTs and its costs."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(targets) + "\n")
        target_file = fh.name
    argv = [
        "fping",
        "-4",
        "-q",
        "-C",
        str(count),
        "-p",
        f"{period_s * 1000:g}",
        "-i",
        f"{interval_s * 1000:g}",
        "-t",
        f"{timeout_s * 1000:g}",
        "-f",
        target_file,
    ]
    try:
        _out, err, wall_s, cpu_s, rss = _run_measured(lab, argv, CHILD_TIMEOUT_S)
    finally:
        os.unlink(target_file)
    rtts: dict[str, list[float | None]] = {}
    notes: list[str] = []
    for line in err.splitlines():
        address, sep, samples = line.partition(" : ")
        if not sep:
            notes.append(line.strip())
            continue
        rtts[address.strip()] = [None if s == "-" else float(s) / 1000 for s in samples.split()]
    return rtts, wall_s, cpu_s, rss, {"messages": notes[:5]}


def run_engine(
    lab: Lab,
    targets: list[str],
    count: int,
    period_s: float,
    burst_rate: float,
    timeout_s: float,
) -> tuple[dict[str, list[float | None]], float, float, float, int | None, dict[str, Any]]:
    """Run the engine in a child process in the site's namespace; return RTTs and costs."""
    plan = {
        "targets": targets,
        "count": count,
        "period_s": period_s,
        "burst_rate": burst_rate,
        "timeout_s": timeout_s,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(plan, fh)
        plan_file = fh.name
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", plan_file]
    try:
        out, err, _wall, cpu_process, rss = _run_measured(lab, argv, CHILD_TIMEOUT_S)
    finally:
        os.unlink(plan_file)
    lines = out.strip().splitlines()
    if not lines:
        raise RuntimeError(f"the engine child printed nothing: {err.strip()[-500:]}")
    child = json.loads(lines[-1])
    return child["rtts_s"], child["wall_s"], child["cpu_s"], cpu_process, rss, child["counters"]


# -- comparing with the truth -----------------------------------------------------------------


def compare(
    tool: str,
    period_s: float,
    targets: list[str],
    count: int,
    timeout_s: float,
    rtts: dict[str, list[float | None]],
    truth: list[TruthRecord],
    costs: tuple[float, float, float, int | None],
    tool_errors: dict[str, Any],
) -> Run:
    """Match every request of ``tool`` to its truth record and summarise the differences.

    Truly lost = dropped by the responder, held past ``timeout_s``, or never seen by it
    (counted as lost on the way). The k-th truth record of an address is the k-th request.
    """
    wall_s, cpu_s, cpu_process_s, rss = costs
    groups = by_destination(truth)
    errors: list[float] = []
    loss_disagree = rtt_disagree = 0
    measured_lost = true_lost = 0
    max_loss_error = 0.0
    per_target: list[tuple[float, str, float]] = []
    for address in targets:
        samples = rtts.get(address, [None] * count)
        samples = (samples + [None] * count)[:count]
        records = groups.get(address, [])
        truly: list[float | None] = []
        for k in range(count):
            rec = records[k] if k < len(records) else None
            hold = None if rec is None or rec.dropped else rec.hold_s
            truly.append(hold if hold is not None and hold <= timeout_s else None)
        lost_here = sum(s is None for s in samples)
        true_here = sum(t is None for t in truly)
        measured_lost += lost_here
        true_lost += true_here
        max_loss_error = max(max_loss_error, abs(lost_here - true_here) / count)
        if [s is None for s in samples] != [t is None for t in truly]:
            loss_disagree += 1
            continue
        diffs = [
            s - t for s, t in zip(samples, truly, strict=True) if s is not None and t is not None
        ]
        errors += diffs
        if diffs:
            per_target.append((abs(statistics.fmean(diffs)), address, max(diffs, key=abs)))
            if per_target[-1][0] > RTT_TOLERANCE_S:
                rtt_disagree += 1
    arrivals = sorted(r.t_ns for r in truth)
    span_s = (arrivals[-1] - arrivals[0]) / 1e9 if len(arrivals) > 1 else 0.0
    probes = len(targets) * count
    errors.sort()
    return Run(
        tool=tool,
        targets=len(targets),
        probes=probes,
        period_s=period_s,
        wall_s=wall_s,
        cpu_s=cpu_s,
        cpu_s_process=cpu_process_s,
        peak_rss_kib=rss,
        request_rate_pps=(len(arrivals) - 1) / span_s if span_s > 0 else 0.0,
        seen_by_responder=len(truth),
        loss_error=(measured_lost - true_lost) / probes,
        max_target_loss_error=max_loss_error,
        rtt_error_mean_s=statistics.fmean(errors) if errors else None,
        rtt_error_p99_s=errors[min(len(errors) - 1, math.ceil(0.99 * len(errors)) - 1)]
        if errors
        else None,
        rtt_error_max_s=max(errors, key=abs) if errors else None,
        loss_disagree=loss_disagree,
        rtt_disagree=rtt_disagree,
        tool_errors=tool_errors,
        worst_targets=[
            {"address": a, "mean_error_s": m, "max_error_s": x}
            for m, a, x in sorted(per_target, reverse=True)[:3]
        ],
    )


# -- the benchmark ---------------------------------------------------------------------------


def _period_s(n: int, rate: float) -> float:
    return max(n / rate, MIN_PERIOD_S)


FPING_OUT_OF_SEQUENCES = "not enough sequence numbers"
FPING_RETRIES = 3


def _fping_run(
    lab: Lab, args: argparse.Namespace, targets: list[str], period_s: float, interval_s: float
) -> tuple[
    float,
    dict[str, list[float | None]],
    tuple[float, float, float, int | None],
    int,
    dict[str, Any],
]:
    """Run fping; when it aborts for want of sequence numbers, retry with twice the period.

    fping 5.1 keeps each of its 65,536 sequence numbers for 10 s, so more than about 6,500
    requests a second over 10 s make it abort ("not enough sequence numbers available").

    Returns:
        ``(period used, RTTs, costs, truth offset of the run that counted, diagnostics)``.
    """
    aborted: list[str] = []
    for _ in range(FPING_RETRIES + 1):
        offset = lab.truth_offset()
        rtts, wall_s, cpu_s, rss, errs = run_fping(
            lab, targets, args.count, period_s, interval_s, args.timeout_s
        )
        failure = next((m for m in errs["messages"] if FPING_OUT_OF_SEQUENCES in m), None)
        if failure is None:
            return period_s, rtts, (wall_s, cpu_s, cpu_s, rss), offset, {**errs, "aborted": aborted}
        aborted.append(f"aborted at -p {period_s * 1e3:g} ms: {failure}")
        time.sleep(args.timeout_s + 0.5)  # let the aborted run's last replies go by
        period_s *= 2
    return period_s, {}, (0.0, 0.0, 0.0, None), lab.truth_offset(), {"aborted": aborted}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Build the lab, run the tools for every N, tear the lab down; return the report."""
    lab = Lab(args.prefix)
    impairment = {
        "delay_s": args.delay_s,
        "jitter_s": 0.0,
        "loss": args.loss,
        "outages_per_day": 0.0,
    }
    lab.up({SITE: impairment}, sites=[SITE], seed=args.seed)
    runs: list[Run] = []
    try:
        for n in args.sizes:
            targets = bulk_targets(n)
            asked_s = _period_s(n, args.rate)
            for tool in TOOLS * args.repeat:
                stats0 = lab.stats() or {}
                if tool == "linkwatch":
                    offset = lab.truth_offset()
                    rtts, wall_s, cpu_s, cpu_proc, rss, errs = run_engine(
                        lab, targets, args.count, asked_s, args.burst_rate, args.timeout_s
                    )
                    period_s, costs = asked_s, (wall_s, cpu_s, cpu_proc, rss)
                else:
                    interval_s = 1 / args.burst_rate if tool == "fping" else 0.0
                    period_s, rtts, costs, offset, errs = _fping_run(
                        lab, args, targets, asked_s, interval_s
                    )
                truth = lab.wait_truth(offset, n * args.count, timeout_s=10.0, settle_s=0.3)
                stats1 = lab.stats() or {}
                errs = {
                    **errs,
                    "responder_late_sends": stats1.get("late_sends", 0)
                    - stats0.get("late_sends", 0),
                    "responder_socket_drops": stats1.get("socket_drops", 0)
                    - stats0.get("socket_drops", 0),
                }
                run = compare(
                    tool, period_s, targets, args.count, args.timeout_s, rtts, truth, costs, errs
                )
                runs.append(run)
                print(_row(run), flush=True)
    finally:
        lab.down()
    return _report(args, runs)


def median_cpu(runs: list[Run]) -> dict[tuple[str, int], float]:
    """Return the median CPU seconds per 1,000 probes of each (tool, N) over its repeats.

    Runs that used no CPU or that the responder never saw (an aborted fping) are left out.
    """
    per: dict[tuple[str, int], list[float]] = {}
    for run in runs:
        if run.cpu_s > 0 and run.seen_by_responder:
            per.setdefault((run.tool, run.targets), []).append(run.cpu_per_1000_s)
    return {key: statistics.median(values) for key, values in per.items()}


def _report(args: argparse.Namespace, runs: list[Run]) -> dict[str, Any]:
    ours = [r for r in runs if r.tool == "linkwatch"]
    medians = median_cpu(runs)
    cheapest: dict[int, float] = {}
    for (tool, n), cpu in medians.items():
        if tool != "linkwatch" and cpu < cheapest.get(n, math.inf):
            cheapest[n] = cpu
    ratios = {
        n: cpu / cheapest[n]
        for (tool, n), cpu in medians.items()
        if tool == "linkwatch" and n in cheapest
    }
    biggest = max(ours, key=lambda r: r.targets) if ours else None
    goals = {
        "loss_exact_every_target": all(r.loss_disagree == 0 for r in ours),
        "rtt_within_0_05_ms_every_target": all(r.rtt_disagree == 0 for r in ours),
        "rtt_mean_error_within_0_05_ms": all(
            r.rtt_error_mean_s is not None and abs(r.rtt_error_mean_s) <= RTT_TOLERANCE_S
            for r in ours
        ),
        "cpu_at_most_2x_fping": bool(ratios) and max(ratios.values()) <= GOAL_CPU_RATIO,
        "cpu_ratio_to_cheapest_fping": {n: round(x, 2) for n, x in ratios.items()},
        "cpu_per_1000_s_median": {f"{tool} {n}": round(x, 5) for (tool, n), x in medians.items()},
        "probes_per_s_at_least_20000": biggest is not None
        and biggest.request_rate_pps >= GOAL_PROBES_PER_S,
        "probes_per_s_at_largest_n": round(biggest.request_rate_pps) if biggest else None,
        "cpu_bound_probes_per_s_per_core": {
            r.targets: round(1000 / r.cpu_per_1000_s) for r in ours if r.cpu_s > 0
        },
    }
    return {
        "benchmark": "icmp_engine",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "settings": {
            "sizes": args.sizes,
            "count": args.count,
            "delay_s": args.delay_s,
            "loss": args.loss,
            "rate_pps": args.rate,
            "burst_rate_pps": args.burst_rate,
            "timeout_s": args.timeout_s,
            "seed": args.seed,
            "repeat": args.repeat,
        },
        "runs": [{**asdict(r), "cpu_per_1000_s": r.cpu_per_1000_s} for r in runs],
        "goals": goals,
    }


def _machine() -> dict[str, Any]:
    fping = subprocess.run(["fping", "-v"], capture_output=True, text=True, check=False)
    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "fping": (fping.stdout or fping.stderr).strip(),
        "load_1m_at_end": os.getloadavg()[0],
    }


HEADER = (
    f"{'tool':<10} {'N':>5} {'period':>7} {'wall s':>7} {'CPU s/1k':>9} {'RSS MiB':>8} "
    f"{'req/s':>7} {'loss err':>9} {'RTT err ms':>10} {'p99 ms':>7} {'max ms':>7} "
    f"{'disagree':>8}"
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:+.4f}"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def _row(run: Run) -> str:
    return (
        f"{run.tool:<10} {run.targets:>5} {run.period_s * 1e3:>5.0f}ms {run.wall_s:>7.2f} "
        f"{run.cpu_per_1000_s:>9.4f} {_mib(run.peak_rss_kib):>8} "
        f"{run.request_rate_pps:>7.0f} {run.loss_error:>+9.4f} {_ms(run.rtt_error_mean_s):>10} "
        f"{_ms(run.rtt_error_p99_s):>7} {_ms(run.rtt_error_max_s):>7} "
        f"{run.loss_disagree:>3}+{run.rtt_disagree:<4}"
    )


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 100 only (under a minute)")
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated N values")
    parser.add_argument("--count", type=int, default=20, help="echo requests per target")
    parser.add_argument("--delay-s", type=float, default=0.05, help="responder hold time")
    parser.add_argument("--loss", type=float, default=0.10, help="responder drop ratio")
    parser.add_argument("--rate", type=float, default=25_000, help="mean requests per second")
    parser.add_argument("--burst-rate", type=float, default=50_000, help="send rate ceiling")
    parser.add_argument("--timeout-s", type=float, default=1.0, help="wait per request")
    parser.add_argument("--seed", type=int, default=1, help="responder seed")
    parser.add_argument("--prefix", default="lwbench", help="the bench lab's name prefix")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each tool per N, interleaved; CPU is compared by median (1-9)",
    )
    args = parser.parse_args(argv)
    sizes = [100] if args.quick else [int(x) for x in str(args.sizes).split(",") if x.strip()]
    if not sizes or any(not 1 <= n <= 10_000 for n in sizes):
        parser.error("--sizes: each N must be 1-10000")
    if not 1 <= args.count <= 100:
        parser.error("--count must be 1-100")
    if not 1 <= args.repeat <= 9:
        parser.error("--repeat must be 1-9")
    args.sizes = sizes
    return args


def main(argv: list[str]) -> int:
    """Run the benchmark (or, with ``--child PLAN``, the engine side of one run)."""
    if argv[:1] == ["--child"] and len(argv) == 2:
        return _child_main(argv[1])
    args = _parse(argv)
    if os.geteuid() != 0:
        print("icmp_engine: needs root (network namespaces, raw sockets)", file=sys.stderr)
        return 2
    if shutil.which("fping") is None:
        print("icmp_engine: needs fping (apt-get install fping)", file=sys.stderr)
        return 2
    print(HEADER, flush=True)
    report = run_benchmark(args)
    goals = report["goals"]
    medians = goals["cpu_per_1000_s_median"]
    print(f"\nCPU s per 1,000 probes, median of {args.repeat} run(s):")
    for n in args.sizes:
        keys = [(tool, f"{tool} {n}") for tool in TOOLS]
        cells = [f"{tool} {medians[key]:.4f}" for tool, key in keys if key in medians]
        ratio = goals["cpu_ratio_to_cheapest_fping"].get(n)
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        print(f"  N = {n:>5}: {', '.join(cells)}; linkwatch / cheapest fping {shown}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
