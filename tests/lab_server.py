"""A private JupyterLab server and Debian's headless Chromium, for tests/test_browser.py and
docs/make_images.py (which puts tests/ on its path for this module).

The server listens on 127.0.0.1 at a free port with a random token, keeps its config, runtime,
settings and workspaces under its own folder, and has the news popup turned off; its kernels see
this checkout's posecore first (PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("POSECORE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# the front-end plugin that asks to fetch Jupyter news (a popup over the page, and network requests)
DISABLED_LAB_PLUGINS = ("@jupyterlab/apputils-extension:announcements",)


@dataclass
class Lab:
    server: subprocess.Popen
    url: str
    token: str
    log: Path  # the server's stdout and stderr
    log_file: IO[str]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api(url: str, token: str, method: str = "GET") -> Any:
    """One call of the server's REST API: the decoded JSON answer (None when empty)."""
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


def launch_lab(root_dir: Path, base: Path, env: dict[str, str] | None = None) -> Lab:
    """Start JupyterLab serving root_dir, its own folders under `base`, with `env` added to this
    process's environment; returns at once (`wait_until_up` waits for it to answer)."""
    config = base / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {name: True for name in DISABLED_LAB_PLUGINS}})
    )
    port, token = free_port(), secrets.token_hex(16)
    environment = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))),
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    log = base / "server.log"
    log_file = open(log, "w")  # noqa: SIM115  (the server writes it for its whole life)
    server = subprocess.Popen(command, env=environment, stdout=log_file, stderr=subprocess.STDOUT)
    return Lab(server, f"http://127.0.0.1:{port}", token, log, log_file)


def wait_until_up(lab: Lab, timeout_s: float = 60) -> None:
    """Until the server answers; a RuntimeError with the end of its log if it exits or stays silent."""
    deadline = time.monotonic() + timeout_s
    while True:
        if lab.server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited {lab.server.returncode}:\n{lab.log.read_text()[-3000:]}")
        try:
            api(f"{lab.url}/api/status", lab.token)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer on {lab.url} within {timeout_s:.0f} s") from None
            time.sleep(0.2)


def stop_lab(lab: Lab) -> None:
    """Shut the kernels down (they run in their own sessions), then the server."""
    if lab.server.poll() is None:
        try:
            for kernel in api(f"{lab.url}/api/kernels", lab.token):
                api(f"{lab.url}/api/kernels/{kernel['id']}", lab.token, method="DELETE")
        except OSError:
            pass
        lab.server.terminate()
        try:
            lab.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            lab.server.kill()
    lab.log_file.close()


def wait_for_idle_kernel(lab: Lab, notebook: str, timeout_s: float = 60) -> None:
    """Until the notebook's kernel has started and is idle (cells run before that are dropped)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(
            s["path"].endswith(notebook) and (s.get("kernel") or {}).get("execution_state") == "idle"
            for s in api(f"{lab.url}/api/sessions", lab.token)
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"no idle kernel for {notebook} within {timeout_s:.0f} s; server log {lab.log}")
