"""The ASGI twin app (``serve_asgi.py``) under uvicorn, in processes of its own, on the
store namespaces and HTTP helpers of :mod:`tests.support.servers`."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import AppServer, Deployment, _tempdir, store_setup

SERVE_ASGI = Path(__file__).with_name("serve_asgi.py")


class AsgiServer(AppServer):
    """``serve_asgi.py`` under uvicorn (one worker), on a port the system picks."""

    #: Which framework routes the twin's views: "starlette" or "fastapi".
    framework = "starlette"

    def launch(self) -> None:
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(SERVE_ASGI),
                "--port",
                "0",
                "--exit-with-stdin",
                "--framework",
                self.framework,
                "--settings-json",
                json.dumps(self.settings),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=SERVE_ASGI.parent,
        )


@contextlib.contextmanager
def deployed_asgi(name: str, label: str, processes: int) -> Iterator[Deployment]:
    """The ASGI app in ``processes`` uvicorn processes (one for the memory store)."""
    setup = store_setup(name, label)
    servers = [
        AsgiServer(setup.settings, _tempdir(setup, f"{label}-logs"), f"{label}-{name}-{n}")
        for n in range(1 if name == "memory" else processes)
    ]
    deployment = Deployment(setup, servers)
    try:
        setup.open()  # creates the SQL table once, before the processes race to
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        yield deployment
        deployment.check_logs()
    finally:
        for server in servers:
            server.stop()
        try:
            setup.forget(deployment.cookies)
        finally:
            setup.close()
