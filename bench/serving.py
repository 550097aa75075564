"""Serving throughput: the Procfile's web command on loopback, driven by wrk.

    apt-get install wrk                                  # Debian's wrk, once
    python -m bench.serving                              # 8 connections, 10 s per endpoint
    python -m bench.serving --connections 8 --duration 20

Starts `gunicorn app:app` (gunicorn.conf.py: 2 workers unless WEB_CONCURRENCY says otherwise), then
runs the same wrk load on POST /generate with a random label vector and seed per request (so
the PNG cache never hits) and on GET /healthz (the trivial endpoint), and prints requests/s,
p50/p95/p99 latency, errors and the ratio. wrk runs on the same machine and takes CPU from the
server, as the report's machine block says.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.machine import machine_info

ROOT = Path(__file__).resolve().parent.parent
# wrk's Lua hooks: a random one-hot-or-mixed label vector and seed per request, and a JSON summary.
RANDOM_GENERATE = """
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  local labels = {}
  for i = 1, 10 do labels[i] = string.format("%.3f", math.random()) end
  local body = string.format('{"labels": [%s], "seed": %d}', table.concat(labels, ","), math.random(0, 2^31))
  return wrk.format("POST", "/generate", {["Content-Type"] = "application/json"}, body)
end
"""
SUMMARY = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def web_command() -> list[str]:
    """The Procfile's web: command, with gunicorn taken from this Python's environment."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = shlex.split(line.removeprefix("web:"))
    return [str(Path(sys.executable).parent / command[0]), *command[1:]]


def wait_until_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run_wrk(url: str, script: str, args: argparse.Namespace) -> dict:
    """One wrk run; its summary as a dict with requests_per_s."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script + SUMMARY)
        lua.flush()
        command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "-s", lua.name]
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    result = json.loads(next(line for line in output.splitlines() if line.startswith("JSON "))[5:])
    result["requests_per_s"] = round(result["requests"] / result["seconds"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench.serving: wrk is missing: apt-get install wrk")

    env = {**os.environ, "PORT": str(args.port), "HOST": "127.0.0.1", "CHAINER_WARN_VERSION_MISMATCH": "0"}
    base = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        web_command(), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_up(base + "/healthz")
        run_wrk(base, RANDOM_GENERATE, argparse.Namespace(**{**vars(args), "duration": 2}))  # warm up
        generate = run_wrk(base, RANDOM_GENERATE, args)
        trivial = run_wrk(base + "/healthz", "", args)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {
        "benchmark": "serving",
        "command": " ".join(web_command()[-2:]),
        "workers": int(os.environ.get("WEB_CONCURRENCY", "2")),
        "connections": args.connections,
        "duration_s": args.duration,
        "generate_random": generate,
        "healthz": trivial,
        "generate_to_healthz": round(generate["requests_per_s"] / trivial["requests_per_s"], 3),
        "machine": machine_info(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
