"""``s2ac sweep --address`` to a port where something other than a Ray head listens fails at once.

Ray's own connect would retry for minutes, printing its C++ client's warnings. The probe sends
what a gRPC client sends first (HTTP/2's preface and a SETTINGS frame) and tells a gRPC server's
SETTINGS reply from anything else. The servers here are small stand-ins on loopback; a real Ray
head is covered by tests/test_cluster.py."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from s2ac.cli import main
from s2ac.sweep import ClusterConnectionError, probe_address

SETTINGS_FRAME = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # length 0, type 4 (SETTINGS), flags 0, stream 0


@contextmanager
def tcp_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection-at-a-time TCP server on loopback calling ``answer`` per connection; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def grpc_like(conn: socket.socket) -> None:
    conn.recv(64)
    conn.sendall(SETTINGS_FRAME)


def closes_at_once(conn: socket.socket) -> None:
    pass


def silent(conn: socket.socket) -> None:
    conn.recv(64)
    threading.Event().wait(1.0)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the server's own request log would go to this test's stderr
        pass


@contextmanager
def web_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_web_server_is_named_as_not_a_ray_cluster():
    with web_server() as port, pytest.raises(ClusterConnectionError) as raised:
        probe_address(f"127.0.0.1:{port}")
    message = str(raised.value)
    assert message.startswith(f"127.0.0.1:{port} is not a Ray cluster: the service there replied '")
    assert "gRPC" in message and "ray start --head" in message


def test_a_service_that_hangs_up_is_not_a_ray_cluster():
    with tcp_server(closes_at_once) as port, pytest.raises(ClusterConnectionError, match="closed the connection"):
        probe_address(f"ray://127.0.0.1:{port}")


@pytest.mark.parametrize("answer", [grpc_like, silent], ids=["settings-reply", "silent"])
def test_a_grpc_reply_or_silence_is_left_to_ray(answer):
    with tcp_server(answer) as port:
        probe_address(f"127.0.0.1:{port}", timeout_s=0.3)  # no error


def test_under_tls_the_grpc_check_is_skipped(monkeypatch):
    monkeypatch.setenv("RAY_USE_TLS", "1")
    with web_server() as port:
        probe_address(f"127.0.0.1:{port}")  # a TLS head would answer the plain preface with an alert


def test_the_sweep_command_ends_in_one_line_and_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "sweep"
    with web_server() as port:
        code = main(["sweep", "--address", f"127.0.0.1:{port}", "--algos", "sac", "--envs", "Pendulum-v1",
                     "--out", str(out)])  # fmt: skip
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: 127.0.0.1:{port} is not a Ray cluster")
    assert not out.exists()
