#!/usr/bin/env python3
"""An independent check of every cost figure, to the cent.

For each generated case (cases.py) this writes the configuration, starts the real
`buildfund serve` on an SQLite file in a temporary directory, creates an ingest token, posts
the build steps and compares `GET /api/v1/costs`, `GET /api/v1/costs/jobs` (when the service
has it) and `GET /api/v1/funds` for every month with the figures of model.py, which follows
cost-model.md alone. Every difference is printed with its case seed; the exit status is 1
when there is one.

    python3 tests/oracle/oracle.py --cases 40 --seed 1 --bin target/debug/buildfund
    python3 tests/oracle/oracle.py --case-seed 100007 --bin target/debug/buildfund --keep
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cases  # noqa: E402
from model import Model, month_of  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Server:
    """One `buildfund serve` on a fresh SQLite file, for one case."""

    def __init__(self, binary, case, keep, database=None):
        self.dir = tempfile.mkdtemp(prefix=f"oracle-{case['seed']}-")
        self.keep = keep
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        db = database or f"sqlite://{self.dir}/buildfund.sqlite?mode=rwc"
        self.config = os.path.join(self.dir, "buildfund.toml")
        with open(self.config, "w") as f:
            f.write(cases.toml(case, db, f"127.0.0.1:{port}"))
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BUILDFUND_CONFIG")}
        env.setdefault("RUST_LOG", "warn")
        self.env = env
        self.binary = binary
        self.log = open(os.path.join(self.dir, "serve.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--config", self.config, "serve"],
            cwd=self.dir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"buildfund serve exited {self.proc.returncode}: {self.logs()}")
            try:
                if http("GET", self.base + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"buildfund serve not ready in 60 s: {self.logs()}")
            time.sleep(0.05)
        out = subprocess.run(
            [binary, "--config", self.config, "token", "create", "--scope", "ingest"],
            cwd=self.dir, env=env, capture_output=True, text=True, check=True,
        )
        self.token = next(w for w in out.stdout.split() if w.startswith("bf_"))

    def logs(self):
        self.log.flush()
        with open(os.path.join(self.dir, "serve.log"), "rb") as f:
            return f.read().decode(errors="replace")[-2000:]

    def post_steps(self, steps):
        body = "".join(json.dumps(s) + "\n" for s in steps).encode()
        status, out = http("POST", self.base + "/api/v1/build-steps", body, {
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/x-ndjson"})
        if status != 200:
            raise RuntimeError(f"ingest answered {status}: {out[:2000]!r}")

    def get(self, path):
        status, out = http("GET", self.base + path)
        return status, (json.loads(out) if out else None)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def compare_costs(model, month, got, diff):
    want = model.costs(month)
    seen = {}
    for line in got["lines"]:
        key = (line["machine"], None if line.get("idle") else line["jobset"])
        if key in seen:
            diff(f"{month} line {key}: listed twice")
        seen[key] = line
    for key in sorted(set(want) | set(seen), key=lambda k: (k[0], k[1] or "~idle")):
        w, g = want.get(key), seen.get(key)
        name = f"{month} line {key[0]} {key[1] or '~idle'}"
        if g is None:
            # a line of no cents and no busy time need not be listed
            if w["cents"] or w["busy"]:
                diff(f"{name}: missing (expected {w['cents']} cents, {w['busy']} s)")
            continue
        if w is None:
            if g["cost_cents"] or g["busy_seconds"]:
                diff(f"{name}: unexpected line ({g['cost_cents']} cents, {g['busy_seconds']} s)")
            continue
        for field, wv, gv in (
            ("cost_cents", w["cents"], g["cost_cents"]),
            ("busy_seconds", w["busy"], g["busy_seconds"]),
            ("pool", w["pool"], g.get("pool")),
            ("fund", w["fund"], g.get("fund")),
        ):
            if wv != gv:
                diff(f"{name}: {field} expected {wv!r}, got {gv!r}")
    total = sum(w["cents"] for w in want.values())
    if got["total_cents"] != total:
        diff(f"{month} total_cents expected {total}, got {got['total_cents']}")
    pools_w, pools_g = {}, {}
    for key, w in want.items():
        if key[1] is not None:
            pools_w[w["pool"]] = pools_w.get(w["pool"], 0) + w["cents"]
    for line in got["lines"]:
        if not line.get("idle"):
            pools_g[line.get("pool")] = pools_g.get(line.get("pool"), 0) + line["cost_cents"]
    for p in sorted(set(pools_w) | set(pools_g), key=str):
        if pools_w.get(p, 0) != pools_g.get(p, 0):
            diff(f"{month} pool {p} total expected {pools_w.get(p, 0)}, got {pools_g.get(p, 0)}")
    unpriced_w = model.unpriced_busy(month)
    unpriced_g = {}
    for u in got.get("unpriced") or []:
        if not u["busy_seconds"]:
            continue  # a step of no length on an unknown machine: listed, no busy time
        unpriced_g[u["machine"]] = unpriced_g.get(u["machine"], 0) + u["busy_seconds"]
    if unpriced_w != unpriced_g:
        diff(f"{month} unpriced busy seconds expected {unpriced_w}, got {unpriced_g}")


def compare_jobs(model, month, got, diff):
    want = model.jobs(month)
    seen = {}
    for j in got["jobs"]:
        seen[(j["jobset"], j["job"])] = j
    for key in sorted(set(want) | set(seen)):
        w, g = want.get(key), seen.get(key)
        name = f"{month} job {key[0]} {key[1]}"
        if g is None:
            diff(f"{name}: missing (expected {w['cents']} cents, {w['busy']} s)")
            continue
        if w is None:
            diff(f"{name}: unexpected ({g['cost_cents']} cents, {g['busy_seconds']} s)")
            continue
        for field, wv, gv in (
            ("cost_cents", w["cents"], g["cost_cents"]),
            ("busy_seconds", w["busy"], g["busy_seconds"]),
            ("steps", w["steps"], g["steps"]),
            ("pool", w["pool"], g.get("pool")),
            ("fund", w["fund"], g.get("fund")),
        ):
            if wv != gv:
                diff(f"{name}: {field} expected {wv!r}, got {gv!r}")
    total = sum(w["cents"] for w in want.values())
    if got["total_cents"] != total:
        diff(f"{month} jobs total_cents expected {total}, got {got['total_cents']}")
    order = [(-j["cost_cents"], j["jobset"], j["job"]) for j in got["jobs"]]
    if order != sorted(order):
        diff(f"{month} jobs are not ordered by cost_cents descending, jobset, job")


def check_job_filters(server, model, month, q, full, diff):
    """`limit` cuts the list, never the total; `pool` and `jobset` keep what matches."""
    status, got = server.get(f"/api/v1/costs/jobs?{q}&limit=3")
    if status != 200 or got["jobs"] != full["jobs"][:3] or got["total_cents"] != full["total_cents"]:
        diff(f"{month} jobs limit=3: not the first 3 jobs with the whole total ({status})")
    want = model.jobs(month)
    pools = sorted({j["pool"] for j in want.values()})
    jobsets = sorted({k[0] for k in want})
    for name, value, keep in (
        ("pool", pools[0] if pools else "other", lambda k, j: j["pool"] == value),
        ("jobset", jobsets[-1] if jobsets else "nixpkgs:a", lambda k, j: k[0] == value),
    ):
        status, got = server.get(f"/api/v1/costs/jobs?{q}&limit=10000&{name}={value}")
        kept = [(j["jobset"], j["job"], j["cost_cents"]) for j in full["jobs"]
                if keep((j["jobset"], j["job"]), j)]
        total = sum(j["cents"] for k, j in want.items() if keep(k, j))
        if status != 200:
            diff(f"{month} jobs {name}={value} answered {status}: {got}")
        elif [(j["jobset"], j["job"], j["cost_cents"]) for j in got["jobs"]] != kept:
            diff(f"{month} jobs {name}={value}: not the matching jobs of the whole list")
        elif got["total_cents"] != total:
            diff(f"{month} jobs {name}={value} total_cents expected {total}, got "
                 f"{got['total_cents']}")


def compare_funds(model, month, got, diff):
    want = model.funds(month)
    seen = {f["slug"]: f for f in got["funds"]}
    for slug, w in want.items():
        g = seen.get(slug)
        if g is None:
            diff(f"{month} fund {slug}: missing")
            continue
        for field, wv, gv in (
            ("spent_cents", w["spent"], g["spent_cents"]),
            ("balance_cents", w["balance"], g["balance_cents"]),
            ("runway_days", w["runway"], g["runway_days"]),
        ):
            if wv != gv:
                diff(f"{month} fund {slug}: {field} expected {wv!r}, got {gv!r}")


def labelled(diff, month, label):
    """Differences named by `label` (the month and the instant) instead of the month."""
    return lambda msg: diff(label + msg[len(month):] if msg.startswith(month) else msg)


def check_month(server, model, month, at, diff):
    """Compares the month's costs, jobs and funds (to date `at`, or whole); -> whether the
    service has GET /api/v1/costs/jobs."""
    q = f"month={month}"
    if at is not None:
        instant = datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        q += f"&at={instant}"
        label = f"{month}@{instant}"
    else:
        label = month
    diff = labelled(diff, month, label)
    status, got = server.get(f"/api/v1/costs?{q}")
    if status != 200:
        diff(f"{month} costs answered {status}: {got}")
    else:
        compare_costs(model, month, got, diff)
    jobs_status, got = server.get(f"/api/v1/costs/jobs?{q}&limit=10000")
    if jobs_status == 200:
        compare_jobs(model, month, got, diff)
        check_job_filters(server, model, month, q, got, diff)
    elif jobs_status != 404:
        diff(f"{month} costs/jobs answered {jobs_status}: {got}")
    status, got = server.get(f"/api/v1/funds?{q}")
    if status != 200:
        diff(f"{month} funds answered {status}: {got}")
    else:
        compare_funds(model, month, got, diff)
    return jobs_status != 404


def run_case(binary, seed, keep, out, database=None, changes=True):
    case = cases.case(seed, int(time.time()))
    if not changes:
        for m in case["machines"]:
            m.pop("changes", None)
    model = Model(case)
    diffs = []

    def diff(msg):
        diffs.append(msg)
        out(f"seed {seed}: {msg}")

    try:
        server = Server(binary, case, keep, database)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        diff(f"the case could not run: {e}")
        return diffs, None
    jobs_route = None
    try:
        for batch in case["batches"]:
            server.post_steps(batch)
        queries = [(month, None) for month in cases.MONTHS]
        queries += [(month_of(at), at) for at in case["at"]]
        for month, at in queries:
            jobs_route = check_month(server, Model(dict(case, now=at)) if at else model,
                                     month, at, diff)
    except (RuntimeError, OSError) as e:
        diff(f"the case could not run: {e}")
    finally:
        server.close()
    if keep:
        with open(os.path.join(server.dir, "case.json"), "w") as f:
            json.dump(case, f, indent=1)
        out(f"seed {seed}: kept in {server.dir}")
    return diffs, jobs_route


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the buildfund binary")
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--case-seed", type=int, action="append", help="run only these case seeds")
    ap.add_argument("--keep", action="store_true", help="keep each case's directory")
    ap.add_argument("--databases", help="a file of empty database URLs, one a line, one per "
                    "case (default: a fresh SQLite file per case)")
    ap.add_argument("--no-changes", action="store_true",
                    help="drop every [[machines.changes]] (for a build that predates them)")
    ap.add_argument("--jobs", type=int, default=2, help="cases run side by side (default 2)")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    seeds = args.case_seed or [args.seed * 100000 + i for i in range(args.cases)]
    databases = [None] * len(seeds)
    if args.databases:
        with open(args.databases) as f:
            databases = [u.strip() for u in f if u.strip()]
        if len(databases) < len(seeds):
            sys.exit(f"{args.databases}: {len(databases)} databases for {len(seeds)} cases")
    failed, total, no_jobs = 0, 0, 0
    started = time.time()

    def one(seed_database):
        lines = []
        seed, database = seed_database
        diffs, jobs_route = run_case(
            binary, seed, args.keep, lines.append, database, not args.no_changes)
        return lines, diffs, jobs_route

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = pool.map(one, zip(seeds, databases))
    for lines, diffs, jobs_route in results:
        for line in lines:
            print(line)
        failed += bool(diffs)
        total += len(diffs)
        no_jobs += not jobs_route
    took = time.time() - started
    note = f"; GET /api/v1/costs/jobs absent in {no_jobs} cases" if no_jobs else ""
    print(f"{len(seeds)} cases in {took:.1f} s: {failed} with differences ({total} in all){note}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
