"""A real `zsmie serve` under hostile connections: many idle connections cost nothing (the
longest idle is closed beyond --max-connections) and /health keeps answering; unfinished
headers are timed out; the server says where it is when ready and logs one line per request.
Repeated accept errors are logged once a minute, without a traceback."""

from __future__ import annotations

import logging
import os
import resource
import socket
import subprocess
import sys
import time

import httpx
import pytest

from zsmie.serving.server import ACCEPT_ERRORS, RateLimited

BIRTH = {"id": "birth", "text": "Violinist Clara Weiss was born in Vienna in 1990",
         "head": [10, 21], "tail": [34, 40]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(trained_demo, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "zsmie", "serve", "--run", str(trained_demo),
                                 "--port", str(port), "--max-connections", "50",
                                 "--header-timeout", "2"], env=env, stderr=err)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    try:
        while "ready" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, "zsmie serve was not ready within 300 s"
            time.sleep(0.3)
        yield url, port, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ready_line_names_the_page_and_the_api(server):
    url, port, log = server
    ready = [line for line in log.read_text().splitlines() if "ready" in line]
    assert ready == [f"zsmie serve: ready. Page: http://127.0.0.1:{port}/  API: POST "
                     f"http://127.0.0.1:{port}/predict, GET http://127.0.0.1:{port}/health"]
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200  # it was ready indeed


def _closed(sockets) -> int:
    """How many of `sockets` the server has closed (each checked once; a closed one stays so)."""
    closed = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:  # reset by the server
            closed += 1
    return closed


def test_health_answers_while_many_idle_connections_are_held(server):
    url, port, log = server
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = min(1000, soft - 100)  # 20 times --max-connections
    sockets = []
    try:
        for _ in range(held):
            sockets.append(socket.create_connection(("127.0.0.1", port)))
        # the connections are held, not still arriving: wait until the server has accepted the
        # whole backlog (it closes the longest idle ones), else a request opened meanwhile is
        # the longest idle when the rest of the backlog is accepted
        deadline = time.time() + 20
        while _closed(sockets) < held - 60 and time.time() < deadline:
            time.sleep(0.2)
        start = time.perf_counter()
        response = httpx.get(f"{url}/health", timeout=10)
        assert response.status_code == 200
        assert time.perf_counter() - start < 1.0
        ok = httpx.post(f"{url}/predict", json={"samples": [BIRTH], "labels": ["spouse", "employer"]},
                        timeout=60)
        assert ok.status_code == 200
        # the server closed the longest idle ones: at most --max-connections stay open
        time.sleep(0.5)
        assert _closed(sockets) >= held - 50
    finally:
        for sock in sockets:
            sock.close()


def test_unfinished_headers_are_timed_out(server):
    url, port, log = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        sock.settimeout(10)
        start = time.perf_counter()
        assert sock.recv(100) == b""  # closed by the server
        assert 1.0 < time.perf_counter() - start < 6.0  # --header-timeout 2


def test_access_log_line_per_request(server):
    url, port, log = server
    httpx.post(f"{url}/predict", json={"samples": [BIRTH, BIRTH], "labels": ["spouse", "employer",
                                                                                "founder"]}, timeout=60)
    httpx.post(f"{url}/predict", content=b"{}", headers={"Content-Type": "text/plain"}, timeout=60)
    time.sleep(0.3)
    lines = [line.split("zsmie.access: ")[1] for line in log.read_text().splitlines()
             if "zsmie.access: POST" in line]
    assert any(line.startswith("POST /predict 200 samples=2 labels=3 ") for line in lines)
    assert any(line.startswith("POST /predict 415 samples=- labels=- ") for line in lines)
    assert "Traceback" not in log.read_text()


def test_repeated_accept_errors_are_logged_once_a_minute(caplog):
    logger = logging.getLogger("test.accept")
    limited = RateLimited(ACCEPT_ERRORS, every=60)
    logger.addFilter(limited)
    try:
        error = OSError(24, "Too many open files")
        with caplog.at_level(logging.ERROR, logger="test.accept"):
            for _ in range(500):
                logger.error("socket.accept() out of system resource\nsocket: <socket>",
                             exc_info=(OSError, error, None))
            logger.error("something else")
        lines = [r for r in caplog.records if r.name == "test.accept"]
        assert len(lines) == 2 and lines[1].getMessage() == "something else"
        assert lines[0].exc_info is None
        assert lines[0].getMessage() == ("socket.accept() out of system resource: [Errno 24] Too many "
                                         "open files (0 more in the last 60 s; at most one such line "
                                         "a minute)")
        limited.last = {k: v - 61 for k, v in limited.last.items()}  # a minute later
        logger.error("socket.accept() out of system resource", exc_info=(OSError, error, None))
        assert "(499 more in the last 60 s" in caplog.records[-1].getMessage()
    finally:
        logger.removeFilter(limited)
