"""The control API client the benchmark scripts share: Python's http.client over
minivmm's Unix-domain socket, and one timed JSON request."""
import http.client
import json
import socket
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix-domain socket."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def request(connection, method, path, body=None):
    """One request; returns (status, parsed JSON or None, seconds)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    start = time.perf_counter()
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    elapsed = time.perf_counter() - start
    return response.status, (json.loads(payload) if payload else None), elapsed
