"""Serving the simulator over HTTP(S) with the standard library, one thread per connection.

``serve()`` binds, starts ``serve_forever`` in a daemon thread and returns the server, so tests
and the management command alike stop it with ``server.shutdown()``. With a certificate and key
the TLS handshake happens in the connection's own thread (a slow client cannot stall accept).
A ``SimulatedDrop`` from the application closes the connection without writing a byte.
"""

import contextlib
import socketserver
import ssl
import sys
import threading
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from .errors import SimulatedDrop


class _Handler(ServerHandler):
    def handle_error(self):
        if isinstance(sys.exc_info()[1], SimulatedDrop):
            self.request_handler.close_connection = True
            self.request_handler.dropped = True
            return
        super().handle_error()

    def log_exception(self, exc_info):
        if not isinstance(exc_info[1], SimulatedDrop):
            super().log_exception(exc_info)


class _RequestHandler(WSGIRequestHandler):
    dropped = False

    def handle(self):
        # As WSGIRequestHandler.handle, with our ServerHandler.
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _Handler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.request_handler = self
        handler.run(self.server.get_app())

    def get_environ(self):
        environ = super().get_environ()
        if self.server.ssl_context is not None:
            environ["HTTPS"] = "on"  # so wsgi.url_scheme says https (Entra's endpoint URLs)
        return environ

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


class SimulatorServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address, app, ssl_context=None, verbose=False):
        self.ssl_context = ssl_context
        self.verbose = verbose
        super().__init__(address, _RequestHandler)
        self.set_app(app)
        self._thread = None

    @property
    def port(self):
        return self.server_address[1]

    @property
    def url(self):
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.server_address[0]}:{self.port}"

    def finish_request(self, request, client_address):
        if self.ssl_context is None:
            return super().finish_request(request, client_address)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return None
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        if self.verbose:
            super().handle_error(request, client_address)

    def start(self):
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        return self

    def shutdown(self):
        super().shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve(sim, host="127.0.0.1", port=0, certfile=None, keyfile=None, verbose=False):
    """Serve ``sim`` on host:port (0 = a free port) in a background thread; return the server."""
    context = None
    if certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
    return SimulatorServer((host, port), sim, context, verbose).start()
