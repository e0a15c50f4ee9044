"""Random but adversarial cases, deterministic per seed.

Each case has a few machines of every cost model, some with changes inside the months
(price, model, slots), active intervals that start or end inside them, both idle policies,
steps that straddle month ends, change instants and active bounds, steps on unknown
machines, jobs with and without names, many equal steps (remainder ties), several pools
and funds, and resends of a key with other content.
"""

import random
from datetime import datetime, timezone

from model import DAY, month_bounds, ts

MONTHS = ["2026-09", "2026-10", "2026-11"]
PROJECTS = ["nixpkgs", "hydra", "p_x"]
JOBSETS = ["cuda", "cuda-12", "trunk", "rocm", ".jobsets", "a", "b"]
JOBS = ["python3Packages.torch.x86_64-linux", "hello", "b.aarch64", "a", "~x", "zz"]


def price(rng):
    p = _price(rng)
    return p if float(p) > 0 else "0.01"


def _price(rng):
    if rng.random() < 0.15:  # a cent an hour: half-hour steps cost exactly half a cent
        return rng.choice(["0.01", "0.03", "0.05", "0.010000"])
    whole = rng.choice([0, 1, 2, 3, 7, 19, 120, 997])
    style = rng.random()
    if style < 0.3:
        return f"{whole}.{rng.randrange(100):02d}"
    if style < 0.6:
        return f"{whole}.{rng.randrange(10**6):06d}"
    if style < 0.8:
        return f"{max(whole, 1)}"
    return f"0.{rng.randrange(1, 1000):03d}"


def date_in(rng, lo_month, hi_month):
    lo, _ = month_bounds(lo_month)
    _, hi = month_bounds(hi_month)
    days = (hi - lo) // DAY
    t = lo + rng.randrange(days) * DAY
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d")


def machine(rng, i, funds):
    kind = ["monthly", "hourly", "metered"][i % 3] if i < 3 else rng.choice(
        ["monthly", "hourly", "metered"]
    )
    m = {
        "name": f"m{i}" if rng.random() < 0.8 else f"builder-{i}.example.org",
        "kind": kind,
        "price": price(rng),
        "slots": rng.choice([1, 1, 2, 3, 4, 8]),
    }
    if rng.random() < 0.3:
        m["aliases"] = [f"alias{i}"]
    if rng.random() < 0.35:
        m["active_from"] = date_in(rng, "2026-08", "2026-11")
    if rng.random() < 0.35:
        lo = m.get("active_from", "2026-08-01")
        until = date_in(rng, "2026-09", "2026-12")
        if ts(until) > ts(lo):
            m["active_until"] = until
    if rng.random() < 0.4:
        m["idle_fund"] = rng.choice(funds)
    changes = []
    last = ts("2026-08-15")
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        d = date_in(rng, "2026-09", "2026-11")
        if rng.random() < 0.2:  # on a month's first day: no split inside a month
            d = rng.choice(["2026-09-01", "2026-10-01", "2026-11-01", "2026-12-01"])
        if ts(d) <= last:
            continue
        last = ts(d)
        c = {"from": d}
        what = rng.random()
        if what < 0.4 or what >= 0.8:
            c["kind"] = rng.choice(["monthly", "hourly", "metered"])
            c["price"] = price(rng)
        if what >= 0.4:
            c["slots"] = rng.choice([1, 2, 4, 6, 16])
        changes.append(c)
    if changes:
        m["changes"] = changes
    return m


def instants(case):
    """Instants worth straddling: month starts, change instants, active bounds."""
    out = [month_bounds(mo)[0] for mo in MONTHS] + [month_bounds(MONTHS[-1])[1]]
    out.append(ts(case["ledger_start"]))
    for m in case["machines"]:
        for k in ("active_from", "active_until"):
            if m.get(k):
                out.append(ts(m[k]))
        for c in m.get("changes", []):
            out.append(ts(c["from"]))
    return out


def step_times(rng, marks):
    lo, _ = month_bounds(MONTHS[0])
    _, hi = month_bounds(MONTHS[-1])
    dur = rng.choice(
        [rng.randrange(1, 600), rng.randrange(600, 7200), rng.randrange(3600, 3 * DAY), 3600, 1800]
    )
    if rng.random() < 0.03:  # up to the longest step the ingest takes: 31 days
        dur = rng.randrange(3 * DAY, 31 * DAY + 1)
    if rng.random() < 0.45:
        t = rng.choice(marks)
        start = t - rng.randrange(1, max(2, dur))
    else:
        start = rng.randrange(lo - 2 * DAY, hi + DAY)
    if rng.random() < 0.03:
        dur = 0
    return start, start + dur


def case(seed, now):
    rng = random.Random(seed)
    nfunds = rng.choice([1, 2, 3])
    funds = [
        {
            "slug": ["general", "cuda", "jetson"][i],
            "default": i == 0,
            "opening_balance": rng.choice(["0", "100.00", "2500.50", "100000.00", "9000000.00"]),
        }
        for i in range(nfunds)
    ]
    slugs = [f["slug"] for f in funds]
    if nfunds > 1 and rng.random() < 0.4:  # the default fund need not come first
        funds[0]["default"], funds[1]["default"] = False, True
    pool_patterns = [
        ["nixpkgs:cuda*"],
        ["*:trunk", "hydra:?ocm"],
        ["p_x:*"],
        ["*:.jobsets"],
        ["nixpkgs:cuda-12"],
        ["*:?"],
    ]
    pools = []
    for i, pats in enumerate(rng.sample(pool_patterns, rng.randrange(0, 5))):
        pools.append({"slug": f"pool{i}", "fund": rng.choice(slugs), "jobsets": pats})
    c = {
        "seed": seed,
        "now": now,
        "ledger_start": rng.choice(
            ["2026-01-01", "2026-01-01", "2026-09-01", "2026-09-13", "2026-10-20",
             "2026-09-13T12:00:30Z"]
        ),
        "idle": rng.choice(["separate", "proportional"]),
        "funds": funds,
        "pools": pools,
    }
    c["machines"] = [machine(rng, i, slugs) for i in range(rng.randrange(3, 7))]
    marks = instants(c)
    names = []
    for m in c["machines"]:
        names.append(m["name"])
        names.extend(m.get("aliases", []))
    unknown = ["ghost01", "M0"]
    jobsets = [(p, j) for p in PROJECTS for j in JOBSETS]
    favourite = rng.sample(jobsets, rng.randrange(2, 6))
    steps = []
    build = 1000
    for _ in range(rng.randrange(40, 220)):
        build += 1
        p, j = rng.choice(favourite) if rng.random() < 0.8 else rng.choice(jobsets)
        start, stop = step_times(rng, marks)
        s = {
            "build": build,
            "step": rng.randrange(1, 4),
            "project": p,
            "jobset": j,
            "machine": rng.choice(names) if rng.random() < 0.92 else rng.choice(unknown),
            "start": start,
            "stop": stop,
        }
        if rng.random() < 0.7:
            s["job"] = rng.choice(JOBS)
        if rng.random() < 0.1:
            s["source"] = "other"
        steps.append(s)
    # remainder ties: equal steps of several jobsets and jobs side by side on one machine
    for _ in range(rng.randrange(0, 4)):
        m = rng.choice(names)
        start, stop = step_times(rng, marks)
        for k in range(rng.randrange(2, 5)):
            build += 1
            p, j = rng.choice(jobsets)
            s = {"build": build, "step": 1, "project": p, "jobset": j, "machine": m,
                 "start": start, "stop": stop}
            if k % 2:
                s["job"] = rng.choice(JOBS)
            steps.append(s)
    # a machine whose month totals are exact halves of a cent: rounding away from zero
    if rng.random() < 0.5:
        c["machines"].append({"name": "half", "kind": "metered", "price": "0.01", "slots": 1,
                              "active_from": "2026-10-01",
                              "active_until": rng.choice(["2026-10-02", "2026-11-01"])})
        for k in range(rng.choice([1, 3, 5])):
            build += 1
            p, j = rng.choice(jobsets)
            start = ts("2026-10-01") + rng.choice([0, 7200 * k])
            steps.append({"build": build, "step": 1, "project": p, "jobset": j,
                          "machine": "half", "start": start, "stop": start + 1800})
    rng.shuffle(steps)
    # a second batch resends some keys with other content
    resend = []
    for s in rng.sample(steps, min(len(steps), rng.randrange(0, 8))):
        r = dict(s)
        r["stop"] = r["start"] + rng.randrange(0, 5 * 3600)
        r["machine"] = rng.choice(names)
        resend.append(r)
    c["batches"] = [steps, resend] if resend else [steps]
    # instants to evaluate a month to date at: anywhere, and just around a mark
    lo, _ = month_bounds(MONTHS[0])
    _, hi = month_bounds(MONTHS[-1])
    mark = rng.choice([t for t in marks if lo < t < hi] or [lo + DAY])
    c["at"] = [rng.randrange(lo + 1, hi), mark + rng.choice([0, 1, -1, 3599, 86400])]
    return c


def toml(c, db_url, listen):
    """The case's configuration file (README, Configuration)."""
    q = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'  # noqa: E731
    out = [
        'currency = "EUR"',
        f'ledger_start = {q(c["ledger_start"])}',
        f'idle = {q(c["idle"])}',
        "",
        "[server]",
        f"listen = {q(listen)}",
        "workers = 1",
        "",
        "[database]",
        f"url = {q(db_url)}",
        "max_connections = 2",
        "",
    ]
    for f in c["funds"]:
        out += ["[[funds]]", f'slug = {q(f["slug"])}', f'name = {q(f["slug"].title())}']
        if f["default"]:
            out.append("default = true")
        out += [f'opening_balance = {q(f["opening_balance"])}', ""]
    for p in c["pools"]:
        pats = ", ".join(q(x) for x in p["jobsets"])
        out += ["[[pools]]", f'slug = {q(p["slug"])}', f'fund = {q(p["fund"])}',
                f"jobsets = [{pats}]", ""]
    for m in c["machines"]:
        out += ["[[machines]]", f'name = {q(m["name"])}', f'slots = {m["slots"]}',
                f'{m["kind"]} = {q(m["price"])}']
        if m.get("aliases"):
            out.append("aliases = [" + ", ".join(q(a) for a in m["aliases"]) + "]")
        for k in ("active_from", "active_until", "idle_fund"):
            if m.get(k):
                out.append(f"{k} = {q(m[k])}")
        out.append("")
        for ch in m.get("changes", []):
            out += ["[[machines.changes]]", f'from = {q(ch["from"])}']
            if ch.get("kind"):
                out.append(f'{ch["kind"]} = {q(ch["price"])}')
            if "slots" in ch:
                out.append(f'slots = {ch["slots"]}')
            out.append("")
    return "\n".join(out) + "\n"
