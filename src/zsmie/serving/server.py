"""The HTTP server under `zsmie serve`: uvicorn (h11) with bounded connections and timeouts.

- At most `max_connections` open connections: a new one beyond that closes the connection
  idle the longest (no request in progress), or itself when every other one is busy. Idle
  connections (many thousands held open by a client) thus cost nothing, and /health answers.
- A connection must send a complete request head within `header_timeout` seconds of opening
  or of its last answer (slow or unfinished headers), else it is closed; an idle keep-alive
  connection is closed after `keep_alive` seconds; a body must arrive within the app's
  `--body-timeout` (408).
- The soft limit of open files is raised to the hard limit, and repeated accept errors
  ("out of system resource") or malformed requests are logged once a minute with a count,
  not once each with a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import OrderedDict
from collections.abc import Callable

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a request-head timeout (set by
    `protocol_class`)."""

    max_connections = 1000
    header_timeout = 10.0

    def _idle(self) -> OrderedDict:
        """The server's connections with no request in progress, the longest idle first."""
        state = self.server_state
        if not hasattr(state, "zsmie_idle"):
            state.zsmie_idle = OrderedDict()
        return state.zsmie_idle

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._became_idle()
        idle = self._idle()
        while len(self.connections) > self.max_connections and idle:
            oldest, _ = idle.popitem(last=False)
            oldest._close_idle()

    def _became_idle(self) -> None:
        self._idle()[self] = None
        self._idle().move_to_end(self)
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.header_timeout, self._close_idle)

    def _busy(self) -> None:
        self._idle().pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _close_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # no request in progress
            self._busy()
            if not self.transport.is_closing():
                self.transport.close()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle and not self.cycle.response_complete:  # a request head arrived
            self._busy()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle is not None and self.cycle.response_complete:
            self._became_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._busy()
        super().connection_lost(exc)


def protocol_class(max_connections: int, header_timeout: float) -> type[GuardedH11Protocol]:
    return type("ZsmieH11Protocol", (GuardedH11Protocol,),
                {"max_connections": max_connections, "header_timeout": header_timeout})


class RateLimited(logging.Filter):
    """Lets through the first of the records starting with one of `prefixes` each `every`
    seconds, without its traceback, saying how many were held back since."""

    def __init__(self, prefixes: tuple[str, ...], every: float = 60.0) -> None:
        super().__init__()
        self.prefixes, self.every = prefixes, every
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        prefix = next((p for p in self.prefixes if message.startswith(p)), None)
        if prefix is None:
            return True
        now = time.monotonic()
        if now - self.last.get(prefix, -self.every) < self.every:
            self.held[prefix] = self.held.get(prefix, 0) + 1
            return False
        self.last[prefix] = now
        held = self.held.pop(prefix, 0)
        reason = f": {record.exc_info[1]}" if record.exc_info and record.exc_info[1] else ""
        record.msg, record.args = (f"{prefix}{reason} ({held} more in the last {self.every:g} s; "
                                   f"at most one such line a minute)"), None
        record.exc_info = record.exc_text = None
        return True


ACCEPT_ERRORS = ("socket.accept() out of system resource", "Invalid HTTP request received")


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()


def serve(app, host: str, port: int, max_connections: int = 1000, header_timeout: float = 10.0,
          keep_alive: float = 5.0, on_ready: Callable[[], None] | None = None) -> None:
    """Run `app` until interrupted, with the bounds above."""
    files = raise_open_files_limit()
    if max_connections > files - 64:
        log.warning("--max-connections %d: above the open-file limit (%d) less a margin; "
                    "connections beyond %d are closed", max_connections, files, files - 64)
        max_connections = max(1, files - 64)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            http=protocol_class(max_connections, header_timeout),
                            timeout_keep_alive=keep_alive, lifespan="on")  # type: ignore[arg-type]
    limited = RateLimited(ACCEPT_ERRORS)  # after uvicorn configured its loggers
    for name in ("asyncio", "uvicorn.error"):
        logging.getLogger(name).addFilter(limited)
    _Server(config, on_ready).run()
