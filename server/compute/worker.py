"""The main loop of one local compute worker process.

Messages from the server: ("run", unit_id, unit) or None (exit). To the server: ("ready", pid),
then per unit any number of ("item", unit_id, value), ending with ("done", unit_id, result),
("error", unit_id, ServerError) or ("abandoned", unit_id). The server abandons a unit by writing
its id into the shared `abandon` value: the unit stops at its next checkpoint (between proxy runs)
and the worker stays warm for the next one; a unit that reaches no checkpoint in time is killed
with its process.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from edgescore.server.compute import units

# Imported here, not on first use: a forkserver preloads this module, so every worker it forks
# starts with torch and the proxies already imported.
from edgescore.server.errors import ServerError, WorkAbandoned
from edgescore.server.proxies import engine  # noqa: F401 - preloaded for forked workers
from edgescore.server.spaces import registry  # noqa: F401 - preloaded for forked workers

log = logging.getLogger("edgescore.server.compute.worker")


def _transferable(exc: BaseException) -> ServerError:
    """The error as the server will see it: a ServerError, which pickles with its status."""
    if isinstance(exc, ServerError):
        try:
            pickle.dumps(exc)
            return exc
        except Exception:  # noqa: BLE001 - an attribute that does not pickle
            return ServerError(exc.message)
    log.error("compute unit failed", exc_info=exc)
    return ServerError(f"computation failed ({type(exc).__name__})")


def main(conn: Connection, abandon: Any, log_level: str = "INFO") -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    units.prepare_process()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the server went away
        if message is None:
            return
        _, unit_id, unit = message

        def checkpoint(unit_id: int = unit_id) -> None:
            if abandon.value == unit_id:
                raise WorkAbandoned()

        def emit(value: Any, unit_id: int = unit_id) -> None:
            conn.send(("item", unit_id, value))

        try:
            _run(conn, unit_id, unit, emit, checkpoint)
        except (BrokenPipeError, ConnectionResetError):
            return  # the server went away while the unit ran


def _run(conn: Connection, unit_id: int, unit: Any, emit: Callable[[Any], None],
         checkpoint: Callable[[], None]) -> None:
    """Run one unit and send its outcome."""
    try:
        result = units.execute(unit, emit, checkpoint)
    except WorkAbandoned:
        conn.send(("abandoned", unit_id))
    except (BrokenPipeError, ConnectionResetError):
        raise
    except BaseException as exc:  # noqa: BLE001 - one unit's failure is its own
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        conn.send(("error", unit_id, _transferable(exc)))
    else:
        conn.send(("done", unit_id, result))
