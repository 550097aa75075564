"""Serving cost and throughput: the Procfile's web command on loopback, driven by wrk.

    apt-get install wrk                                  # Debian's wrk, once
    python -m bench.serving                              # 8 connections, 10 s per endpoint
    python -m bench.serving --connections 8 --duration 20

Runs the server in two shapes, one after the other: as configured (`gunicorn app:app`,
gunicorn.conf.py: 2 workers unless WEB_CONCURRENCY says otherwise, on every core), and as a small
dyno (WEB_CONCURRENCY=1, the server pinned to core 0 with `taskset -c 0`, wrk to the other
cores). In each, the same wrk load goes to POST /generate with a random label vector and seed per
request (so the PNG cache never hits) and to GET /healthz (the trivial endpoint). Reported per
endpoint: the server's own CPU time per request (user + system of the gunicorn master and its
workers, from /proc: throughput alone swings with the neighbours' load), requests/s, p50/p95/p99
latency and errors; and the two ratios healthz/generate of CPU per request and generate/healthz of
requests/s. As configured, wrk shares the cores with the server, as the machine block says.

Then, in each shape, a polite client (10 requests a second, GET /healthz and POST /generate in turn,
a new connection each, 5 s timeout) runs alone and beside each attack of bench.hostile_clients
(64 attacking connections at once, then one more every half second): its success rate and
p50/p99 latency. gunicorn's own threaded worker, as the server was set up before, for comparison:

    GUNICORN_CMD_ARGS="--worker-class gthread --keep-alive 5" python -m bench.serving
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

from bench.hostile_clients import ATTACKS, polite_requests, under_attack
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and of its children that are still running."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1] is the parent's pid
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def run_wrk(url: str, script: str, args: argparse.Namespace, server: int, pin: list[str]) -> dict:
    """One wrk run (the command prefixed by `pin`); its summary with requests_per_s and the server's CPU."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script + SUMMARY)
        lua.flush()
        command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "-s", lua.name]
        before = cpu_seconds(server)
        output = subprocess.run([*pin, *command, url], capture_output=True, text=True, check=True).stdout
        spent = cpu_seconds(server) - before
    result = json.loads(next(line for line in output.splitlines() if line.startswith("JSON "))[5:])
    result["requests_per_s"] = round(result["requests"] / result["seconds"], 1)
    result["server_cpu_ms_per_request"] = round(1000 * spent / max(result["requests"], 1), 3)
    return result


def success_rate(result: dict) -> float:
    return round(result["succeeded"] / result["requests"], 3)


def measure(shape: dict, args: argparse.Namespace) -> dict:
    """Start the server in one shape, load both endpoints in turn, stop it; the two results and ratios."""
    env = {
        **os.environ,
        "PORT": str(args.port),
        "HOST": "127.0.0.1",
        "CHAINER_WARN_VERSION_MISMATCH": "0",
        **shape["env"],
    }
    base = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [*shape["server_pin"], *web_command()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(base + "/healthz")
        warm_up = argparse.Namespace(**{**vars(args), "duration": 2})
        run_wrk(base, RANDOM_GENERATE, warm_up, server.pid, shape["wrk_pin"])
        generate = run_wrk(base, RANDOM_GENERATE, args, server.pid, shape["wrk_pin"])
        trivial = run_wrk(base + "/healthz", "", args, server.pid, shape["wrk_pin"])
        attacks = {"no attack": polite_requests(args.port, args.attack_seconds)}
        for name, attack in ATTACKS.items():
            attacks[name] = under_attack(args.port, attack, args.attack_seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "workers": int(env.get("WEB_CONCURRENCY", "2")),
        "server_pinned_to": shape["server_pin"][2:] or "every core",
        "generate_random": generate,
        "healthz": trivial,
        "healthz_to_generate_cpu": round(
            trivial["server_cpu_ms_per_request"] / generate["server_cpu_ms_per_request"], 3
        ),
        "generate_to_healthz_throughput": round(generate["requests_per_s"] / trivial["requests_per_s"], 3),
        "polite_client": {name: {"success_rate": success_rate(r), **r} for name, r in attacks.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--attack-seconds", type=float, default=5, help="the polite client's run per attack")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench.serving: wrk is missing: apt-get install wrk")

    other_cores = f"1-{os.cpu_count() - 1}" if os.cpu_count() > 2 else "1"
    shapes = {
        "as_configured": {"env": {}, "server_pin": [], "wrk_pin": []},
        "one_core": {
            "env": {"WEB_CONCURRENCY": "1"},
            "server_pin": ["taskset", "-c", "0"],
            "wrk_pin": ["taskset", "-c", other_cores],
        },
    }
    result = {
        "benchmark": "serving",
        "command": " ".join(web_command()[-2:]),
        "connections": args.connections,
        "wrk_threads": args.threads,
        "duration_s": args.duration,
        "worker": os.environ.get("GUNICORN_CMD_ARGS") or "as gunicorn.conf.py says",
        **{name: measure(shape, args) for name, shape in shapes.items()},
        "machine": machine_info(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
