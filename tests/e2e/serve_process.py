"""A `restkv serve` child process for end-to-end tests: free ports, start, wait
for /health, the log on failure, and SIGTERM with the exit code."""
import pathlib
import signal
import socket
import subprocess
import time

import pytest
import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """Starts `binary serve --model model --port P ...args` and waits until /health is 200;
    popen_kw go to subprocess.Popen (e.g. preexec_fn to set a resource limit)."""

    def __init__(self, binary, model, log_path, args=(), startup_timeout=60, **popen_kw):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--model", model, "--port", str(self.port), *args],
            stdout=log, stderr=subprocess.STDOUT, **popen_kw)
        deadline = time.time() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"restkv serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                self.proc.kill()
                pytest.fail(f"restkv serve did not become healthy:\n{self.log()}")
            time.sleep(0.1)

    def log(self):
        return pathlib.Path(self.log_path).read_text()

    def metrics(self):
        """/metrics as {name: value}, labels dropped (the server labels every
        series with its one model name only)."""
        values = {}
        for line in requests.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name.split("{")[0]] = float(value)
        return values

    def stop(self, timeout=60):
        """SIGTERM, then the exit code (graceful shutdown must give 0)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"restkv serve did not exit after SIGTERM:\n{self.log()}")
