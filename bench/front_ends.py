"""The ways to keep slow and hostile clients off the app, measured side by side in one run.

    apt-get install wrk nginx-light                      # Debian's, once
    pip install --target /tmp/alt waitress gevent        # beside the project, not requirements
    PYTHONPATH=/tmp/alt python -m bench.front_ends

Each setup serves the app on loopback in turn: this project's worker (gunicorn.conf.py as it is);
gunicorn's own gthread worker; nginx buffering requests in front of that gthread worker; waitress
(one process, its 4 threads); gunicorn's gevent worker, and the same with reuse_port. A setup whose
program is missing is skipped. For each: wrk's /generate (random states, 8 connections, 10 s) with
the server's CPU per request; a polite client (bench.hostile_clients) alone, beside 64 connections
sending half their headers, beside bodies trickled at 1 byte/s, beside two connections sending
192 KB of one-byte chunks at 0.45 MB/s, and beside 990 connections each holding the largest
unfinished request this project's framer lets wait, with the resident memory of all the setup's
processes before, with them and after they closed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.framing_attacks import LARGEST_UNFINISHED, ONE_BYTE_CHUNKS, Flood, open_holding
from bench.hostile_clients import ATTACKS, polite_requests, under_attack
from bench.machine import machine_info
from bench.serving import RANDOM_GENERATE, ROOT, cpu_seconds, run_wrk, wait_until_up, web_command

GTHREAD = "--worker-class gthread --keep-alive 5"
NGINX_CONF = """
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    client_header_timeout 15s;
    client_body_timeout 15s;
    client_max_body_size 16k;
    keepalive_timeout 100s;
    upstream app {{ server 127.0.0.1:{inner}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering on;
        }}
    }}
}}
"""


def setups(port: int) -> dict[str, dict]:
    """Each setup's commands: the app server's, and nginx's when it is in front (then on `port`)."""
    python = sys.executable
    return {
        "this worker": {"app": web_command(), "env": {}},
        "gthread": {"app": web_command(), "env": {"GUNICORN_CMD_ARGS": GTHREAD}},
        "nginx + gthread": {"app": web_command(), "env": {"GUNICORN_CMD_ARGS": GTHREAD}, "nginx": True},
        "waitress": {"app": [python, "-m", "waitress", f"--listen=127.0.0.1:{port}", "app:app"], "env": {}},
        "gevent": {"app": web_command(), "env": {"GUNICORN_CMD_ARGS": "--worker-class gevent"}},
        "gevent, reuse_port": {
            "app": web_command(),
            "env": {"GUNICORN_CMD_ARGS": "--worker-class gevent --reuse-port"},
        },
    }


def available(setup: dict) -> bool:
    if setup.get("nginx") and shutil.which("nginx") is None:
        return False
    probe = {"waitress": "waitress", "gevent": "gevent"}
    needed = [
        module for word, module in probe.items() if word in " ".join(setup["app"] + [*setup["env"].values()])
    ]
    for module in needed:
        if subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode:
            return False
    return True


def tree_rss_mb(pids: list[int]) -> float:
    """Summed VmRSS of these processes and their children."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        pid, parent = int(fields["Pid"]), int(fields["PPid"])
        if (pid in pids or parent in pids) and "VmRSS" in fields:
            total += int(fields["VmRSS"].split()[0])
    return round(total / 1024, 1)


def measure(name: str, setup: dict, args: argparse.Namespace) -> dict:
    port, inner = args.port, args.port + 1
    app_port = inner if setup.get("nginx") else port
    env = {**os.environ, "PORT": str(app_port), "HOST": "127.0.0.1", **setup["env"]}
    processes = [
        subprocess.Popen(setup["app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    ]
    folder = tempfile.TemporaryDirectory()
    try:
        if setup.get("nginx"):
            conf = Path(folder.name) / "nginx.conf"
            conf.write_text(NGINX_CONF.format(folder=folder.name, port=port, inner=inner))
            processes.append(subprocess.Popen(["nginx", "-c", str(conf)], stderr=subprocess.DEVNULL))
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        pids = [process.pid for process in processes]
        base = f"http://127.0.0.1:{port}"
        warm_up = argparse.Namespace(**{**vars(args), "duration": 2})
        run_wrk(base, RANDOM_GENERATE, warm_up, pids[0], [])
        before = sum(cpu_seconds(pid) for pid in pids)
        generate = run_wrk(base, RANDOM_GENERATE, args, pids[0], [])
        generate["server_cpu_ms_per_request"] = round(
            1000 * (sum(cpu_seconds(pid) for pid in pids) - before) / max(generate["requests"], 1), 3
        )
        polite = {"alone": polite_requests(port, args.seconds)}
        for attack in ["partial headers", "body trickled at 1 byte/s"]:
            polite[attack] = under_attack(port, ATTACKS[attack], args.seconds)
        with Flood(port, ONE_BYTE_CHUNKS, connections=2, rate=225_000):
            time.sleep(1)
            polite["192 KB of one-byte chunks at 0.45 MB/s"] = polite_requests(port, args.seconds)
        rss_before = tree_rss_mb(pids)
        sockets = open_holding(port, LARGEST_UNFINISHED, 990)
        polite["990 largest unfinished requests"] = polite_requests(port, args.seconds)
        rss_with = tree_rss_mb(pids)
        for sock in sockets:
            sock.close()
        time.sleep(3)
        memory = {"rss_before_mb": rss_before, "rss_with_990_mb": rss_with, "rss_after_mb": tree_rss_mb(pids)}
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)
        folder.cleanup()
    brief = {case: f"{r['succeeded']}/{r['requests']}, p99 {r['p99_ms']} ms" for case, r in polite.items()}
    return {"generate": generate, "polite_client": brief, "memory_all_processes": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8, help="wrk's concurrent clients")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="wrk's seconds")
    parser.add_argument("--seconds", type=float, default=3, help="the polite client's run per case")
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench.front_ends: wrk is missing: apt-get install wrk")
    result = {}
    for name, setup in setups(args.port).items():
        result[name] = measure(name, setup, args) if available(setup) else "skipped: not installed"
    print(json.dumps({"benchmark": "front_ends", **result, "machine": machine_info()}, indent=2))


if __name__ == "__main__":
    main()
