"""Shared by the benchmark scripts in tools/ that start servers: a free loopback port,
waiting for a started server's /health, and stopping it."""
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, proc, timeout=120):
    """Returns once GET url/health answers 200; exits the script if the server process
    dies or does not answer within `timeout` seconds (the process is killed then)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            if urllib.request.urlopen(url + "/health", timeout=2).status == 200:
                return
        except Exception:
            pass
        time.sleep(0.5)
    proc.kill()
    sys.exit("server did not become healthy")


def stop(proc, timeout=30):
    """SIGINT (the servers' graceful shutdown), then SIGKILL after `timeout` seconds."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
