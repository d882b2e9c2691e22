"""The printed figures: latency and SQL per page, the totals, the plans of the slow pages."""

from webbench.pages import PAGES, explain

HEADER = (
    f"{'page':<22} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} "
    f"{'queries':>7} {'SQL ms':>7} {'alone':>6}  path"
)


def percentile(values, q):
    """The ``q``-th percentile of ``values``, interpolated between the nearest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def print_pages(results, per_page, target_ms):
    """One line per page: its latency under load and its in-process figures; returns the
    names of the pages that missed the p95 goal (or answered nothing)."""
    print(HEADER)
    print("-" * len(HEADER))
    slow = []
    for name, _ in PAGES:
        times, errors = results[name]
        info = per_page[name]
        p95 = percentile(times, 95)
        print(
            f"{name:<22} {len(times):>6} {percentile(times, 50):>8.1f} {p95:>8.1f} "
            f"{percentile(times, 99):>8.1f} {len(errors):>6} {info['queries']:>7} "
            f"{info['sql_ms']:>7.1f} {info['alone_ms']:>6.1f}  {info['path']}"
        )
        if info["status"] != 200:
            print(f"  ! in-process request answered HTTP {info['status']}")
        if errors:
            print(f"  ! errors: {sorted(set(errors))}")
        if not times or p95 > target_ms:
            slow.append(name)
    return slow


def print_totals(results, elapsed, target_ms, slow, load_after):
    """The request rate, whether the goal was met, the load average after the run."""
    total = sum(len(t) + len(e) for t, e in results.values())
    print(
        f"\n{total:,} requests in {elapsed:.1f} s = {total / elapsed:.0f} req/s; "
        f"goal p95 <= {target_ms:g} ms: "
        + ("met on every page" if not slow else f"missed on {', '.join(slow)}")
    )
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*load_after))
    print(
        "(queries, SQL ms: one in-process request per page with the Django test client; "
        "alone: that page's median in-process time, one request at a time, no queueing)"
    )


def print_plans(slow, per_page):
    """For each slow page: its slowest query and that query's ``EXPLAIN ANALYZE``."""
    for name in slow:
        info = per_page[name]
        print(f"\n--- {name}: slowest query {info['slowest_ms']:.1f} ms (of {info['queries']})")
        print(info["slowest_sql"])
        for line in explain(info["slowest_sql"]):
            print("  " + line)
