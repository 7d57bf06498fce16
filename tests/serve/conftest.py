"""A real uvicorn server in a thread, on a port the OS picks, ready once /api/health answers."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import httpx


@contextmanager
def live_server(app, deadline_s: float = 120.0):
    """Yield the base URL of `app` served by uvicorn on 127.0.0.1 (port 0: the OS picks a free one)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + deadline_s
        while not (server.started and server.servers) and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert thread.is_alive(), "uvicorn failed to start (see its log above)"
        assert server.started, f"uvicorn did not start within {deadline_s} s"
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url}/api/health did not answer within {deadline_s} s"
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
