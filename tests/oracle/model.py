"""The cost model of the accounting contract (spec/cost-model.md of the shared specification), recomputed independently.

Written from the contract's text alone ("Machine cost of a window", "Busy time and
attribution", "Cost per job", "Balance, burn, runway"): exact fractions, integer cents.
A case is a plain dict (see cases.py); nothing here talks to the service.
"""

from datetime import datetime, timezone
from fractions import Fraction

DAY = 86400


def ts(date_or_instant):
    """A date `YYYY-MM-DD` (00:00:00 UTC), an instant `YYYY-MM-DDTHH:MM:SSZ` or unix
    seconds -> unix seconds."""
    if isinstance(date_or_instant, int):
        return date_or_instant
    if "T" in date_or_instant:
        d = datetime.strptime(date_or_instant, "%Y-%m-%dT%H:%M:%SZ")
        return int(d.replace(tzinfo=timezone.utc).timestamp())
    d = datetime.strptime(date_or_instant, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return int(d.timestamp())


def month_bounds(month):
    """`YYYY-MM` -> (start, stop) unix seconds, the half-open calendar month."""
    y, m = (int(x) for x in month.split("-"))
    start = datetime(y, m, 1, tzinfo=timezone.utc)
    stop = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=timezone.utc)
    return int(start.timestamp()), int(stop.timestamp())


def month_of(t):
    d = datetime.fromtimestamp(t, tz=timezone.utc)
    return f"{d.year:04d}-{d.month:02d}"


def cents(price):
    """A decimal string in the ledger currency -> exact cents."""
    return Fraction(price) * 100


def round_half_away(x):
    """Fraction -> int, halves away from zero."""
    n = abs(x)
    r = int(n)  # floor of a non-negative fraction
    if n - r >= Fraction(1, 2):
        r += 1
    return r if x >= 0 else -r


def floor(x):
    return x.numerator // x.denominator


def largest_remainder(exact, total):
    """exact: {key: Fraction}; total: int cents. Floors, then one cent each to the largest
    fractional remainders, ties by ascending key, until the parts sum to total."""
    out = {k: floor(v) for k, v in exact.items()}
    left = total - sum(out.values())
    order = sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))
    if left < 0 or left > len(order):
        raise AssertionError(f"cannot hand out {left} cents over {len(order)} lines")
    for k in order[:left]:
        out[k] += 1
    return out


def glob_match(pattern, text):
    """`*` and `?` over project:jobset (neither crosses `/`); everything else literal."""
    memo = {}

    def go(i, j):
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(pattern):
            res = j == len(text)
        elif pattern[i] == "*":
            res = go(i + 1, j) or (j < len(text) and text[j] != "/" and go(i, j + 1))
        elif pattern[i] == "?":
            res = j < len(text) and text[j] != "/" and go(i + 1, j + 1)
        else:
            res = j < len(text) and text[j] == pattern[i] and go(i + 1, j + 1)
        memo[key] = res
        return res

    return go(0, 0)


class Model:
    def __init__(self, case):
        self.case = case
        self.ledger_start = ts(case["ledger_start"])
        self.now = case["now"]
        self.idle_policy = case.get("idle", "separate")
        self.default_fund = next(f["slug"] for f in case["funds"] if f.get("default"))
        self.machines = case["machines"]
        self.by_name = {}
        for m in self.machines:
            self.by_name[m["name"]] = m
            for a in m.get("aliases", []):
                self.by_name[a] = m
        # a resend of a key replaces the record: the last one wins
        steps = {}
        for batch in case["batches"]:
            for s in batch:
                steps[(s.get("source", "default"), s["build"], s["step"])] = s
        self.steps = steps
        self.steps_by_machine = {}
        self.unpriced = []
        for key, s in steps.items():
            m = self.by_name.get(s["machine"])
            if m is None:
                self.unpriced.append((key, s))
            else:
                self.steps_by_machine.setdefault(m["name"], []).append((key, s))

    # --- configuration lookups -------------------------------------------------------

    def pool_of(self, jobset):
        for p in self.case.get("pools", []):
            if any(glob_match(pat, jobset) for pat in p["jobsets"]):
                return p["slug"], p["fund"]
        return "other", self.default_fund

    def idle_fund(self, m):
        return m.get("idle_fund") or self.default_fund

    def parts(self, m, ws, we):
        """The window [ws, we) split at m's change instants strictly inside it, each part
        with the (kind, price, slots) in force during it."""
        base = (m["kind"], m["price"], m["slots"])
        changes = []
        terms = base
        for c in m.get("changes", []):
            kind, price = terms[0], terms[1]
            if c.get("kind"):
                kind, price = c["kind"], c["price"]
            terms = (kind, price, c.get("slots", terms[2]))
            changes.append((ts(c["from"]), terms))
        cuts = [ws] + [f for f, _ in changes if ws < f < we] + [we]
        out = []
        for a, b in zip(cuts, cuts[1:]):
            in_force = base
            for f, t in changes:
                if f <= a:
                    in_force = t
            out.append((a, b, in_force))
        return out

    def active(self, m, a, b):
        lo = max(a, ts(m["active_from"])) if m.get("active_from") else a
        hi = min(b, ts(m["active_until"])) if m.get("active_until") else b
        return lo, max(lo, hi)

    # --- one (machine, window part) ----------------------------------------------------

    def part_lines(self, m, a, b, terms, month_seconds):
        """-> (lines {key: cents}, busy {jobset: s}, jobs {(jobset, job): cents},
        job_busy {(jobset, job): s}, job_steps {(jobset, job): set(step keys)})"""
        kind, price, slots = terms
        lo, hi = self.active(m, a, b)
        length = hi - lo
        busy_j, busy_jk, steps_jk = {}, {}, {}
        if length > 0:
            for key, s in self.steps_by_machine.get(m["name"], []):
                sec = max(0, min(s["stop"], hi) - max(s["start"], lo))
                if sec <= 0:
                    continue
                j = f'{s["project"]}:{s["jobset"]}'
                k = (j, s.get("job") or "~unnamed")
                busy_j[j] = busy_j.get(j, 0) + sec
                busy_jk[k] = busy_jk.get(k, 0) + sec
                steps_jk.setdefault(k, set()).add(key)
        if length <= 0:
            return {}, {}, {}, {}, {}
        busy = sum(busy_j.values())
        p = cents(price)
        if kind == "monthly":
            cost = p * length / month_seconds
        elif kind == "hourly":
            cost = p * length / 3600
        else:
            cost = p * busy / 3600
        exact = {}
        if kind == "metered" or self.idle_policy == "proportional":
            if busy == 0:
                exact["~idle"] = cost
            else:
                for j, bj in busy_j.items():
                    exact[j] = cost * bj / busy
        else:
            denom = max(slots * length, busy)
            for j, bj in busy_j.items():
                exact[j] = cost * bj / denom
            exact["~idle"] = cost - sum(exact.values())
        total = round_half_away(cost)
        lines = largest_remainder(exact, total)
        jobs = {}
        for j, cj in lines.items():
            if j == "~idle":
                continue
            shares = {
                k[1]: Fraction(cj) * bk / busy_j[j] for k, bk in busy_jk.items() if k[0] == j
            }
            for job, c in largest_remainder(shares, cj).items():
                jobs[(j, job)] = c
        return lines, busy_j, jobs, busy_jk, steps_jk

    # --- a window inside one month -----------------------------------------------------

    def window(self, ws, we):
        """Every line of [ws, we) (inside one month), clipped to [ledger_start, now).
        -> (lines {(machine, jobset|None): {busy, cents}}, jobs {(jobset, job): {...}})"""
        ms, me = month_bounds(month_of(ws))
        assert ws >= ms and we <= me, "a window never spans two months"
        ws, we = max(ws, self.ledger_start), min(we, self.now)
        lines, jobs = {}, {}
        if we <= ws:
            return lines, jobs
        for m in self.machines:
            for a, b, terms in self.parts(m, ws, we):
                pl, busy_j, pj, busy_jk, steps_jk = self.part_lines(m, a, b, terms, me - ms)
                for key, c in pl.items():
                    lk = (m["name"], None if key == "~idle" else key)
                    line = lines.setdefault(lk, {"busy": 0, "cents": 0})
                    line["cents"] += c
                    line["busy"] += busy_j.get(key, 0)
                for jk, bk in busy_jk.items():
                    job = jobs.setdefault(jk, {"busy": 0, "cents": 0, "steps": set()})
                    job["busy"] += bk
                    job["cents"] += pj.get(jk, 0)
                    job["steps"] |= steps_jk[jk]
        return lines, jobs

    def interval_lines(self, s, e):
        """[s, e) split at month boundaries; the lines of every window."""
        out = []
        t = s
        while t < e:
            _, me = month_bounds(month_of(t))
            out.append(self.window(t, min(e, me))[0])
            t = me
        return out

    # --- what the service shows ----------------------------------------------------------

    def line_labels(self, machine, jobset):
        if jobset is None:
            return None, self.idle_fund(self.by_name[machine])
        return self.pool_of(jobset)

    def costs(self, month):
        """GET /api/v1/costs?month=: {(machine, jobset|None): {busy, cents, pool, fund}}"""
        ms, me = month_bounds(month)
        lines, _ = self.window(ms, me)
        for (machine, jobset), line in lines.items():
            line["pool"], line["fund"] = self.line_labels(machine, jobset)
        return lines

    def unpriced_busy(self, month):
        ms, me = month_bounds(month)
        lo, hi = max(ms, self.ledger_start), min(me, self.now)
        out = {}
        for _, s in self.unpriced:
            sec = max(0, min(s["stop"], hi) - max(s["start"], lo))
            if sec > 0:
                out[s["machine"]] = out.get(s["machine"], 0) + sec
        return out

    def jobs(self, month):
        """GET /api/v1/costs/jobs?month=: {(jobset, job): {busy, cents, steps, pool, fund}}"""
        ms, me = month_bounds(month)
        _, jobs = self.window(ms, me)
        for (jobset, _), job in jobs.items():
            job["pool"], job["fund"] = self.pool_of(jobset)
            job["steps"] = len(job["steps"])
        return jobs

    def fund_cost(self, fund, s, e):
        total = 0
        for lines in self.interval_lines(s, e):
            for (machine, jobset), line in lines.items():
                if self.line_labels(machine, jobset)[1] == fund:
                    total += line["cents"]
        return total

    def funds(self, month):
        """GET /api/v1/funds?month= (no donations): {slug: {spent, balance, runway}}"""
        ms, me = month_bounds(month)
        t = min(me, self.now)
        out = {}
        for f in self.case["funds"]:
            slug = f["slug"]
            spent = self.fund_cost(slug, ms, me)
            balance = round_half_away(cents(f.get("opening_balance", "0"))) - self.fund_cost(
                slug, self.ledger_start, t
            )
            burn30 = self.fund_cost(slug, max(t - 30 * DAY, self.ledger_start), t)
            if balance <= 0:
                runway = 0
            elif burn30 == 0:
                runway = None
            else:
                runway = floor(Fraction(balance) * 30 / burn30)
            out[slug] = {"spent": spent, "balance": balance, "runway": runway}
        return out
