"""Load test of `recfunnel serve`: concurrent clients on 127.0.0.1 against a 100k-item funnel.

The server runs in its own process; this process is the load generator (threads with keep-alive
HTTP connections), so both share the machine's cores, as a co-located load balancer would.

    python benchmarks/serve_load.py --build .bench/serve100k          # train + save the funnel once
    python benchmarks/serve_load.py --artifact .bench/serve100k --clients 8 --seconds 20
    python benchmarks/serve_load.py --artifact .bench/serve100k --workers 1,2 --reload-every 3

``--workers 1,2`` serves with each count of worker processes in turn (the same load); with
``--reload-every S`` a further phase posts ``/reload`` every S seconds under load and reports the
failed requests and how long each reload took to reach every worker (polled on ``/health``), and
a table gives the server's memory with each count (Pss of its processes, from /proc: the pages
the workers share, the weights mapped from the artifact, count once).

The funnel: two-tower (300) + ItemCF (150) + popularity (50) recall -> ~500 candidates -> DeepFM
-> drop seen -> MMR -> 10, over a synthetic shop of 100k items and 20k users.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def build(path: str, *, num_items: int, num_users: int, seed: int = 3) -> None:
    from recfunnel.demo import build_funnel, shop_data, train_rankers
    from recfunnel.funnel import MMR, DropSeen

    started = time.perf_counter()
    data = shop_data(num_users=num_users, num_items=num_items, num_impressions=10 * num_items, seed=seed)
    _, deepfm = train_rankers(data, max_epochs=1, seed=seed, log=print, names=("deepfm",))
    funnel = build_funnel(data, deepfm, max_epochs=1, seed=seed, log=print)
    for source, k in zip(funnel.recall, (300, 150, 50, 10), strict=True):
        source.k = k
    funnel.rerank = [DropSeen(), MMR(diversity=0.3)]
    funnel.save(path)
    pd_users = data.clicks_train["user_id"].drop_duplicates()
    pd_users.to_csv(Path(path).with_name(Path(path).name + "-users.csv"), index=False)
    print(f"built {path} in {time.perf_counter() - started:.0f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(artifact: str, port: int, events: str, workers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    process = subprocess.Popen([sys.executable, "-m", "recfunnel.cli.main", "serve", artifact, "--port", str(port),
                                "--events", events, "--log-level", "warning", "--workers", str(workers)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the server did not start: {process.stderr.read().decode() if process.stderr else ''}")


def _client(port: int, make_request, stop: float, latencies: list[float], errors: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.perf_counter() < stop:
        method, url, body = make_request()
        started = time.perf_counter()
        try:
            connection.request(method, url, body=body, headers={"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except OSError:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ok = False
        latencies.append(time.perf_counter() - started)
        if not ok:
            errors.append(1)


def _phase(port: int, make_request, *, clients: int, seconds: float) -> dict[str, float]:
    stop = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[int] = []
    threads = [threading.Thread(target=_client, args=(port, make_request, stop, latencies[i], errors))
               for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    values = np.array([v for part in latencies for v in part]) * 1e3
    return {"requests": len(values), "per_s": len(values) / elapsed, "p50_ms": float(np.percentile(values, 50)),
            "p99_ms": float(np.percentile(values, 99)), "errors": len(errors)}


def _heavy_user(port: int, user: str, events: int, *, probes: int = 40) -> dict[str, float]:
    """Post ``events`` clicks for one user (batches of 1000, mostly items the catalogue lacks,
    as a runaway client would), then time that user's /recommend alone."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for start in range(0, events, 1000):
        batch = [{"user_id": user, "item_id": f"i{n % 1000}" if n % 10 == 0 else f"ghost-{n}", "type": "click"}
                 for n in range(start, min(events, start + 1000))]
        connection.request("POST", "/events", body=json.dumps({"events": batch}),
                           headers={"content-type": "application/json"})
        connection.getresponse().read()
    return _phase(port, lambda: ("GET", f"/recommend?user_id={user}&k=10&explain=false", None),
                  clients=1, seconds=max(2.0, probes * 0.05))


def _items_while(port: int, recommend, *, clients: int, seconds: float, batch: int) -> tuple[dict, dict]:
    """/recommend under load while one more client keeps adding ``batch`` new items per request."""
    counter = iter(range(10**9))

    def items():
        rows = [{"item_id": f"added-{next(counter)}", "price": 9.5} for _ in range(batch)]
        return "POST", "/items", json.dumps({"items": rows})

    result: dict[str, dict] = {}
    adder = threading.Thread(target=lambda: result.setdefault("items", _phase(port, items, clients=1,
                                                                              seconds=seconds)))
    adder.start()
    reading = _phase(port, recommend, clients=clients, seconds=seconds)
    adder.join()
    return reading, result["items"]


def _recommend_requests(users: list[str], explain: bool):
    """A seeded maker of /recommend requests: 90% known users, 10% new ones."""
    rng = random.Random(0)
    flag = "true" if explain else "false"

    def recommend():
        user = rng.choice(users) if rng.random() < 0.9 else f"new-{rng.randrange(10**6)}"
        return "GET", f"/recommend?user_id={user}&k=10&explain={flag}", None

    return recommend


def _health(port: int) -> dict:
    """One /health answer on a new connection (so the kernel may hand it to any worker)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/health")
    body = json.loads(connection.getresponse().read())
    connection.close()
    return body


def _reloads_while(port: int, recommend, *, clients: int, seconds: float, every: float) -> tuple[dict, list[float]]:
    """/recommend under load while ``POST /reload {}`` comes every ``every`` seconds; returns the
    reading phase and, per reload, the seconds until every worker reported it on /health."""
    workers = {_health(port)["worker"] for _ in range(200)}
    reached: list[float] = []

    def reloader() -> None:
        stop = time.perf_counter() + seconds - every
        while time.perf_counter() < stop:
            time.sleep(every)
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)  # idle ones are closed
            connection.request("POST", "/reload", body="{}", headers={"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"/reload answered {response.status}")
            target = max(_health(port)["reloads"] for _ in range(5))
            seen: dict[int, int] = {}
            while set(seen) != workers or min(seen.values()) < target:
                answer = _health(port)
                seen[answer["worker"]] = max(seen.get(answer["worker"], 0), answer["reloads"])
            reached.append(time.perf_counter() - started)

    thread = threading.Thread(target=reloader)
    thread.start()
    reading = _phase(port, recommend, clients=clients, seconds=seconds)
    thread.join()
    return reading, reached


def run(artifact: str, *, clients: int, seconds: float, event_batch: int, explain: bool,
        port: int | None = None, heavy: int = 0, item_batch: int = 0) -> None:
    users = Path(artifact).with_name(Path(artifact).name + "-users.csv").read_text().split()[1:]
    external = port is not None  # a server started by hand (e.g. with several workers)
    port = port or _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = None if external else _start(artifact, port, str(Path(tmp) / "events.sqlite"))
        try:
            rng = random.Random(0)
            recommend = _recommend_requests(users, explain)

            def events():
                batch = [{"user_id": rng.choice(users), "item_id": f"i{rng.randrange(1000)}", "type": "click"}
                         for _ in range(event_batch)]
                return "POST", "/events", json.dumps({"events": batch})

            _phase(port, recommend, clients=2, seconds=2)  # warm-up
            rows = {"GET /recommend": _phase(port, recommend, clients=clients, seconds=seconds),
                    f"POST /events ({event_batch} per request)": _phase(port, events, clients=clients,
                                                                         seconds=seconds)}
            if heavy:
                rows["GET /recommend, one ordinary user alone"] = _phase(
                    port, lambda: ("GET", f"/recommend?user_id={users[1]}&k=10&explain=false", None),
                    clients=1, seconds=2)
                rows[f"GET /recommend, one user with {heavy:,} events, alone"] = _heavy_user(port, users[0], heavy)
            if item_batch:
                reading, adding = _items_while(port, recommend, clients=clients, seconds=seconds, batch=item_batch)
                rows["GET /recommend while items are added"] = reading
                rows[f"POST /items ({item_batch} new per request)"] = adding
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)
    print(f"\n{clients} clients, {seconds:.0f} s per route, explain={explain}, {os.cpu_count()} cores shared\n")
    print("| route | requests | requests/s | p50 ms | p99 ms | errors | events/s |")
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        per_event = event_batch if name.startswith("POST /events") else 0
        print(f"| {name} | {row['requests']:,} | {row['per_s']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row['errors']} | {row['per_s'] * per_event:,.0f} |" if per_event else
              f"| {name} | {row['requests']:,} | {row['per_s']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row['errors']} | |")


def _process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux's /proc/PID/task/*/children)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            queue += [int(child) for child in task.read_text().split()]
    return found


def _memory_mib(pid: int) -> dict[str, float]:
    """The server's processes' memory (MiB, from /proc/PID/smaps_rollup): Pss summed (each shared
    page split between the processes that map it: what the server costs the machine), and the
    largest worker's Rss and anonymous (private, not file-backed) memory."""
    rows = []
    for process in _process_tree(pid):
        fields = {}
        for line in Path(f"/proc/{process}/smaps_rollup").read_text().splitlines()[1:]:
            name, value = line.split(":", 1)
            fields[name] = int(value.split()[0]) / 1024
        rows.append(fields)
    workers = rows[1:] or rows  # with several, the first is uvicorn's supervisor
    return {"pss": sum(r["Pss"] for r in rows), "processes": len(rows), "rss": max(r["Rss"] for r in workers),
            "anonymous": max(r["Anonymous"] for r in workers)}


def compare_workers(artifact: str, counts: list[int], *, clients: int, seconds: float, explain: bool,
                    reload_every: float, events: str | None) -> None:
    """GET /recommend with each count of workers under the same load; then reloads under load."""
    users = Path(artifact).with_name(Path(artifact).name + "-users.csv").read_text().split()[1:]
    rows: dict[str, dict] = {}
    reached: dict[int, list[float]] = {}
    memory: dict[int, dict[str, float]] = {}
    for workers in counts:
        port = _free_port()
        with tempfile.TemporaryDirectory() as tmp:
            server = _start(artifact, port, events or str(Path(tmp) / "events.sqlite"), workers)
            try:
                recommend = _recommend_requests(users, explain)
                _phase(port, recommend, clients=2, seconds=3)  # warm-up: every worker answers some
                rows[f"{workers} worker(s): GET /recommend"] = _phase(port, recommend, clients=clients,
                                                                     seconds=seconds)
                memory[workers] = _memory_mib(server.pid)  # after the load: every worker has answered
                if reload_every:
                    reading, times = _reloads_while(port, recommend, clients=clients, seconds=seconds,
                                                    every=reload_every)
                    rows[f"{workers} worker(s): GET /recommend, /reload every {reload_every:g} s"] = reading
                    reached[workers] = times
            finally:
                server.terminate()
                server.wait(30)
    print(f"\n{clients} clients, {seconds:.0f} s per row, explain={explain}, {os.cpu_count()} cores shared by the "
          f"server's workers and this load generator\n")
    print("| run | requests | requests/s | p50 ms | p99 ms | failed |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['requests']:,} | {row['per_s']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row['errors']} |")
    print("\n| workers | processes | Pss of all, MiB | Rss of a worker, MiB | anonymous memory of a worker, MiB |")
    print("|---:|---:|---:|---:|---:|")
    for workers, row in memory.items():
        print(f"| {workers} | {row['processes']:.0f} | {row['pss']:,.0f} | {row['rss']:,.0f} | {row['anonymous']:,.0f} |")
    for workers, times in reached.items():
        if times:
            print(f"\n{workers} worker(s): {len(times)} reloads, each on every worker within "
                  f"{min(times):.2f}-{max(times):.2f} s of the POST (median {float(np.median(times)):.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", help="train a funnel over a synthetic shop and save it here, then exit")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--artifact", help="the funnel to serve (written by --build)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--event-batch", type=int, default=100)
    parser.add_argument("--explain", action="store_true", help="ask for reasons (off: the bare funnel)")
    parser.add_argument("--port", type=int, help="load a server already listening on this port instead")
    parser.add_argument("--heavy-user", type=int, default=0, metavar="N",
                        help="also post N events for one user and time that user's /recommend")
    parser.add_argument("--item-batch", type=int, default=0, metavar="N",
                        help="also time /recommend while another client adds N new items per request")
    parser.add_argument("--workers", help="comma-separated worker counts to compare, e.g. 1,2")
    parser.add_argument("--reload-every", type=float, default=0.0, metavar="S",
                        help="with --workers: also post /reload every S seconds under load")
    parser.add_argument("--events", help="with --workers: the servers' --events (e.g. redis://127.0.0.1:6379/0)")
    args = parser.parse_args()
    if args.workers and args.artifact:
        compare_workers(args.artifact, [int(n) for n in args.workers.split(",")], clients=args.clients,
                        seconds=args.seconds, explain=args.explain, reload_every=args.reload_every,
                        events=args.events)
    elif args.build:
        build(args.build, num_items=args.items, num_users=args.users)
    elif args.artifact:
        run(args.artifact, clients=args.clients, seconds=args.seconds, event_batch=args.event_batch,
            explain=args.explain, port=args.port, heavy=args.heavy_user, item_batch=args.item_batch)
    else:
        parser.error("give --build DIR or --artifact DIR")


if __name__ == "__main__":
    main()
