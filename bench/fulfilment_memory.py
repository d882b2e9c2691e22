"""The memory figure of ``bench/fulfilment.py --memory A,B``: the peak worker RSS of an export
of A devices against one of B devices (goal: B/A <= 1.2), one after the other on the same
simulator (``--simulator-process`` serves it as its own process). ``h`` is the benchmark module
(its setup helpers)."""


def memory(args, tmp, h):
    small, large = (int(x) for x in args.memory.split(","))
    sim, server = h.start_simulator(
        int(large * 1.3) + 20, args.scale, tmp, process=args.simulator_process
    )
    officer, approvers = h.users()
    peaks = {}
    try:
        for count in (small, large):
            regs, hub_devices = h.pick(sim, count)
            request = h.make_request(officer, regs, hub_devices, "export")
            request = h.plan_and_approve(request, officer, approvers)
            workers = h.Workers(args.workers, tmp)
            try:
                elapsed = h.run_until_final(request, workers, args.timeout)
            finally:
                workers.stop()
            peaks[count] = workers.peak
            print(
                f"export of {count} devices ({request.operations.count()} operations): "
                f"{request.status} in {elapsed:.1f}s, peak worker RSS "
                f"{workers.peak / 2**20:.1f} MiB"
            )
    finally:
        server.shutdown()
    print(
        f"peak RSS ratio {large} vs {small} devices: {peaks[large] / peaks[small]:.2f} "
        "(goal <= 1.2)"
    )
