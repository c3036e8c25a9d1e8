"""A live server against slow and greedy clients: header deadline, keep-alive, connection cap
(regression: #15)."""

from __future__ import annotations

import socket
import time

import httpx


def _partial(port: int) -> socket.socket:
    """A connection that sends half a request line and then nothing (a slowloris client)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (recv returns b"" or the connection resets) in time;
    whatever it still had to send (the rest of a response) is read first."""
    deadline = time.monotonic() + within
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(65536) == b"":
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        pass
    return False


def test_partial_headers_are_cut_off_and_the_server_keeps_answering(server):
    live = server(options=("--header-timeout", "1", "--keep-alive", "1")).start()
    slow = [_partial(live.port) for _ in range(50)]
    try:
        assert httpx.get(f"{live.url}/health", timeout=5).status_code == 200  # not starved meanwhile
        started = time.monotonic()
        assert all(_closed_by_server(sock, within=10) for sock in slow)
        assert time.monotonic() - started < 10
    finally:
        for sock in slow:
            sock.close()


def test_a_silent_connection_and_an_idle_keep_alive_are_closed(server):
    live = server(options=("--header-timeout", "1", "--keep-alive", "1")).start()
    silent = socket.create_connection(("127.0.0.1", live.port), timeout=10)
    idle = socket.create_connection(("127.0.0.1", live.port), timeout=10)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert b"200 OK" in idle.recv(4096)
    try:
        assert _closed_by_server(silent, within=10) and _closed_by_server(idle, within=10)
    finally:
        silent.close()
        idle.close()


def test_connections_past_the_limit_are_refused_and_the_rest_served(server):
    live = server(options=("--max-connections", "20", "--header-timeout", "30")).start()
    held = [_partial(live.port) for _ in range(20)]
    try:
        time.sleep(0.5)
        extra = socket.create_connection(("127.0.0.1", live.port), timeout=10)
        assert _closed_by_server(extra, within=10)  # closed at once: the limit is reached
        extra.close()
        for sock in held[:5]:
            sock.close()
        time.sleep(0.5)
        assert httpx.get(f"{live.url}/health", timeout=5).status_code == 200  # room again
    finally:
        for sock in held:
            sock.close()
