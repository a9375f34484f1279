"""Turns the benchmark's raw results into the Markdown report (medians over rounds).

Usage: python3 report.py RESULTS_TSV META_TSV
RESULTS_TSV rows: round, scenario, side (api|floor|ceiling), connections, then for api: rps, p50,
p95, p99 (ms), non2xx, socket_errors, CPU µs per request of the server and of its PostgreSQL
backends; for floor: tps ("nan" when pgbench failed); for ceiling (hello, health): rps, p50,
p95, p99, non2xx, socket_errors.
META_TSV rows: key, value.
"""
import math
import statistics
import sys
from collections import defaultdict

SCENARIOS = ["list", "tagged", "get", "unlimited", "limited", "create", "mixed", "big", "mixed1000"]


def median(values):
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def fmt(value, digits=0):
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def clients_text(counts):
    if not counts:
        return "?"
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low}-{high}"


def main():
    api, floor, ceiling = defaultdict(list), defaultdict(list), defaultdict(list)
    api_conns, floor_conns = {}, {}
    with open(sys.argv[1]) as f:
        for line in f:
            row = line.rstrip("\n").split("\t")
            _, scenario, side, conns = row[:4]
            numbers = [float(x) for x in row[4:]]
            if side == "api":
                api[scenario].append(numbers)
                api_conns[scenario] = conns
            elif side == "ceiling":
                ceiling[scenario].append(numbers)
            else:
                floor[scenario].append(numbers[0])
                floor_conns.setdefault(scenario, set()).add(int(conns))
    with open(sys.argv[2]) as f:
        meta = dict(line.rstrip("\n").split("\t", 1) for line in f if "\t" in line)

    rounds = max((len(v) for v in api.values()), default=0)
    out = []
    out.append(f"## todo-api benchmark, {meta.get('date', '')}")
    out.append("")
    out.append("| scenario | connections | API req/s | p50 ms | p95 ms | p99 ms | non-2xx | socket errors "
               "| floor TPS | API/floor |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for scenario in SCENARIOS:
        if scenario not in api:
            continue
        runs = api[scenario]
        rps, p50, p95, p99 = (median([r[i] for r in runs]) for i in range(4))
        non2xx = int(sum(r[4] for r in runs))
        sockets = int(sum(r[5] for r in runs))
        tps = median(floor.get(scenario, []))
        floor_cell = fmt(tps)
        clients = clients_text(floor_conns.get(scenario, set()))
        if clients != api_conns[scenario]:
            floor_cell += f" (c={clients})"
        ratio = rps / tps if tps and not math.isnan(tps) else math.nan
        out.append(f"| {scenario} | {api_conns[scenario]} | {fmt(rps)} | {fmt(p50, 2)} | {fmt(p95, 2)} "
                   f"| {fmt(p99, 2)} | {non2xx} | {sockets} | {floor_cell} | {fmt(ratio, 2)} |")
    if "limited" in api and "unlimited" in api:
        # The limiter's cost: in each round, `get` with limits on against `get` with limits off.
        pairs = list(zip(api["unlimited"], api["limited"]))
        ratios = [on[0] / off[0] for off, on in pairs if off[0]]
        cpu = [(off[6], on[6]) for off, on in pairs]
        out.append("")
        out.append(f"`unlimited` and `limited` are `get` against a second server started for the run, "
                   f"warmed up, with rate limits off, then on and out of reach (RATE_LIMIT_PER_MINUTE=1000000: "
                   f"every request through the limiter, none refused); the other scenarios run with limits "
                   f"off. Limits on / off, `get` req/s: "
                   f"{fmt(median(ratios), 3)} (per round: {', '.join(fmt(r, 3) for r in ratios)}); server CPU "
                   f"µs per request on / off: {', '.join(f'{fmt(on)} / {fmt(off)}' for off, on in cpu)}.")
    out.append("")
    out.append(f"Medians over {rounds} round(s) of {meta.get('seconds', '?')} s per run, API and floor "
               "interleaved; non-2xx and socket errors are totals over all rounds. The floor is pgbench "
               "(-M prepared, -j 2, plan_cache_mode=force_generic_plan as on the server's connections) "
               "running the handlers' statements from sql/tasks/ on the same "
               "database; `(c=N)` marks a floor run with N clients instead of the API's connection count "
               "(mixed1000's floor is the mixed floor at "
               f"{clients_text(floor_conns.get('mixed1000', set()))} clients: {meta.get('floor_note', '')}). "
               "Tasks created by "
               "a run are deleted (and the table vacuumed) before the next run.")
    if ceiling:
        out.append("")
        out.append("The HTTP layer's ceiling in the same run (100 connections, no token, no database): "
                   "rouille alone answering a constant (`tests/bench/hello.rs`, 32 threads), and the API's "
                   "`GET /health` (its connection layer, a worker, the router and the access log).")
        out.append("")
        out.append("| ceiling | req/s | p50 ms | p99 ms | non-2xx | socket errors |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for name, label in [("hello", "rouille hello-world"), ("health", "API `GET /health`")]:
            runs = ceiling.get(name, [])
            if runs:
                rps, p50, p99 = (median([r[i] for r in runs]) for i in (0, 1, 3))
                errors = [int(sum(r[i] for r in runs)) for i in (4, 5)]
                out.append(f"| {label} | {fmt(rps)} | {fmt(p50, 2)} | {fmt(p99, 2)} | {errors[0]} | {errors[1]} |")
    out.append("")
    out.append("| | |")
    out.append("|---|---|")
    for key, label in [
        ("peak_rss", "server peak RSS (VmHWM at the end)"),
        ("rss_1000", "server VmRSS sampled during mixed1000 (max)"),
        ("threads_1000", "server threads sampled during mixed1000 (max)"),
        ("server_settings", "server settings"),
        ("server_log", "server log"),
        ("date", "date"),
        ("nproc", "nproc"),
        ("cpu", "CPU"),
        ("postgres", "PostgreSQL"),
        ("wrk", "wrk"),
    ]:
        if key in meta:
            out.append(f"| {label} | {meta[key]} |")

    out.append("")
    out.append("CPU time per API request (medians, µs; from /proc: the todo-api process, and the "
               "PostgreSQL backends of its pool):")
    out.append("")
    out.append("| scenario | todo-api | its PostgreSQL backends |")
    out.append("|---|---:|---:|")
    for scenario in SCENARIOS:
        if scenario in api:
            runs = [r + [math.nan] * (8 - len(r)) for r in api[scenario]]
            out.append(f"| {scenario} | {fmt(median([r[6] for r in runs]))} "
                       f"| {fmt(median([r[7] for r in runs]))} |")

    per_round = ["", "Per round (API req/s / floor TPS):", ""]
    per_round.append("| scenario | " + " | ".join(f"round {i + 1}" for i in range(rounds)) + " |")
    per_round.append("|---|" + "---:|" * rounds)
    for scenario in SCENARIOS:
        if scenario in api:
            cells = []
            for i in range(rounds):
                a = api[scenario][i][0] if i < len(api[scenario]) else math.nan
                b = floor[scenario][i] if i < len(floor.get(scenario, [])) else math.nan
                cells.append(f"{fmt(a)} / {fmt(b)}")
            per_round.append(f"| {scenario} | " + " | ".join(cells) + " |")
    out.extend(per_round)
    print("\n".join(out))


if __name__ == "__main__":
    main()
