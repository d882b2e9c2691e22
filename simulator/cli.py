"""The azuresim command's work, free of Django so it can be run and tested on its own."""

import argparse
import os
import signal
import threading
from pathlib import Path

from .app import Simulator
from .hosts import ALL_HOSTS
from .server import serve
from .targets import write_entra_env, write_targets

# Registered when no --entra-redirect-uri is given: the portal's sign-in callback
# (requests_app/accounts/sso.py CALLBACK_PATH) on loopback, where Entra ignores the port.
DEFAULT_REDIRECT_URIS = (
    "http://127.0.0.1/accounts/sso/callback/",
    "http://localhost/accounts/sso/callback/",
)


def add_arguments(parser):
    parser.add_argument("--bind", default="127.0.0.1:8701", help="host:port (port 0 = any)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--tls-cert", default=None)
    parser.add_argument("--tls-key", default=None)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of 500/503 answers")
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--drop-after-rate", type=float, default=0.0)
    parser.add_argument(
        "--throttle-scale",
        type=float,
        default=1.0,
        help="multiply Azure's rate limits (0 disables throttling)",
    )
    parser.add_argument("--retry-after", action="store_true", help="send Retry-After on 429")
    parser.add_argument(
        "--write-targets",
        default=None,
        metavar="PATH",
        help="write the portal's targets file at PATH, and entra.env beside it",
    )
    parser.add_argument(
        "--entra-redirect-uri",
        action="append",
        default=[],
        metavar="URL",
        help="a redirect URI of the simulated app registration (repeatable; for loopback "
        "hosts the port is ignored, as Entra does; default: the portal's callback on "
        "127.0.0.1 and localhost)",
    )
    parser.add_argument(
        "--state-file",
        default=None,
        metavar="PATH",
        help="keep the simulator's state in PATH across restarts",
    )
    parser.add_argument(
        "--reset-state", action="store_true", help="ignore the state file and seed afresh"
    )
    parser.add_argument("--verbose", action="store_true", help="log one line per call")


def parse_bind(bind):
    host, _, port = bind.rpartition(":")
    return host or "127.0.0.1", int(port)


def say(out, text):
    out.write(text + "\n")
    out.flush()


def run(options, out, stop=None, on_ready=None):
    """Serve until ``stop`` is set (or SIGINT/SIGTERM when on the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    sim = Simulator(
        seed=options.seed,
        devices=options.devices,
        throttle_scale=options.throttle_scale or None,
        entra_token=os.environ.get("AZURESIM_ENTRA_TOKEN") or None,
        log=(lambda line: say(out, line)) if options.verbose else None,
        latency_ms=options.latency_ms,
        jitter_ms=options.jitter_ms,
        error_rate=options.fault_rate,
        drop_rate=options.drop_rate,
        drop_after_rate=options.drop_after_rate,
        retry_after=options.retry_after,
        entra_redirect_uris=getattr(options, "entra_redirect_uri", None) or DEFAULT_REDIRECT_URIS,
        state_file=getattr(options, "state_file", None),
        reset_state=getattr(options, "reset_state", False),
    )
    if sim.state_notice:
        say(out, sim.state_notice)
    host, port = parse_bind(options.bind)
    try:
        server = serve(sim, host, port, options.tls_cert, options.tls_key, verbose=options.verbose)
    except BaseException:
        sim.close()
        raise
    try:
        say(out, f"Azure simulator listening on {server.url}")
        for name in ALL_HOSTS:
            say(out, f"{name}: {sim.connection_string(name)}")
        entra = sim.entra
        say(out, f"Entra ID sign-in (simulated): authority {server.url} tenant {entra.tenant_id}")
        say(out, f"  client id {entra.client_id}; metadata {entra.metadata_url(server.url)}")
        uris = ", ".join(entra.redirect_uris) or "none (--entra-redirect-uri URL)"
        say(out, f"  redirect URIs: {uris}")
        if options.write_targets:
            # entra.env first: whoever waits for the targets file finds both.
            env = write_entra_env(sim, Path(options.write_targets).parent / "entra.env", server.url)
            path = write_targets(sim, options.write_targets, server.url)
            say(out, f"Targets written to {path} (Entra settings in {env})")
        if on_ready:
            on_ready(sim, server)
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        sim.close()
        say(out, "Azure simulator stopped.")
    return sim


def main(argv=None, out=None, stop=None, on_ready=None):
    import sys

    parser = argparse.ArgumentParser(prog="azuresim")
    add_arguments(parser)
    return run(parser.parse_args(argv), out or sys.stdout, stop, on_ready)
