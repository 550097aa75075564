"""The Heroku deploy: app.json names the app's settings, and the slug installs and serves as Heroku runs it.

The slow test does what `git push heroku main` does, as far as can be done without Heroku: copy what
git would push, remove what .slugignore lists (Heroku does that before the buildpack runs), install
requirements.txt into a fresh venv with pip alone (no PIP_CONSTRAINT, no cache, after upgrading pip
and setuptools to the newest), start the Procfile's web command with $PORT set, and hold the dyno's
limits: /healthz within the 60 s boot limit, master and workers under 512 MB. It needs the package
index (PyPI, or the index pip's configuration names) and fails at the pip step without it.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from helpers import ROOT, free_port

BOOT_LIMIT_S = 60  # Heroku stops a web dyno that has not bound $PORT within 60 s
DYNO_MB = 512  # Basic and Standard-1X dynos
# Where pip downloads from (a mirror, a proxy's CA) is the machine's business and stays. Every other
# PIP_* variable goes, PIP_CONSTRAINT and PIP_FIND_LINKS above all: Heroku passes none to pip.
PIP_NETWORK_VARS = {
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "PIP_CLIENT_CERT",
    "PIP_PROXY",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_RETRIES",
}
# A setting the code reads: os.environ.get("X", ...), os.getenv("X"), os.environ["X"], "X" in os.environ.
# os.environ.setdefault is the code setting a library's default, not reading ours.
READ_SETTING = re.compile(
    r"""os\.(?:environ\.get\(|getenv\(|environ\[)\s*["'](\w+)["']|["'](\w+)["']\s+in\s+os\.environ"""
)
LITERAL_DEFAULT = re.compile(r"""os\.(?:environ\.get|getenv)\(\s*["'](\w+)["']\s*,\s*["']([^"']*)["']\s*\)""")
PLATFORM_VARS = {"PORT"}  # set by Heroku on every dyno; app.json must not set it


def setting_sources() -> list[Path]:
    """The files the web dyno runs: gunicorn's settings, the entry point and the three packages."""
    return [
        ROOT / "app.py",
        ROOT / "gunicorn.conf.py",
        *sorted((ROOT / "server").rglob("*.py")),
        *sorted((ROOT / "webapp").rglob("*.py")),
        *sorted((ROOT / "model").rglob("*.py")),
    ]


def test_app_json_declares_exactly_the_settings_the_app_reads():
    manifest = json.loads((ROOT / "app.json").read_text())
    text = "\n".join(path.read_text() for path in setting_sources())
    read = {name for match in READ_SETTING.finditer(text) for name in match.groups() if name}
    assert PLATFORM_VARS <= read, "the code no longer reads PORT: is gunicorn.conf.py still the config?"
    assert set(manifest["env"]) == read - PLATFORM_VARS, "app.json's env and the settings the code reads"
    for name, spec in manifest["env"].items():
        assert spec.get("description") and spec.get("required") is False, name
    for name, default in LITERAL_DEFAULT.findall(text):
        if name in manifest["env"] and "value" in manifest["env"][name]:
            assert manifest["env"][name]["value"] == default, f"{name}: app.json's value, the code's default"
    assert manifest["buildpacks"] == [{"url": "heroku/python"}]


def pushed_files() -> list[str]:
    """What `git push` sends, as the working tree has it: tracked files and untracked, unignored ones."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
    )
    if listed.returncode != 0:
        pytest.fail("git ls-files failed (the test copies what git would push):\n" + listed.stderr.decode())
    return [name for name in listed.stdout.decode().split("\0") if name and (ROOT / name).is_file()]


def remove_slugignored(app: Path) -> None:
    """.slugignore as Heroku reads it: gitignore patterns, no negation; a leading / anchors at the root."""
    doomed = []
    for line in (app / ".slugignore").read_text().splitlines():
        pattern = line.strip().rstrip("/")
        if not pattern or pattern.startswith("#"):
            continue
        doomed += app.glob(pattern[1:]) if pattern.startswith("/") else app.rglob(pattern)
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def pip(venv_python: Path, args: list[str], app: Path, step: str) -> tuple[str, float]:
    """One pip step as the buildpack runs it; a failure names the step and shows pip's last words."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in PIP_NETWORK_VARS}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    started = time.monotonic()
    done = subprocess.run(
        [str(venv_python), "-m", "pip", "install", "--no-cache-dir", *args],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=600,
    )
    output = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        pytest.fail(f"{step} failed (exit {done.returncode}):\n{output[-4000:]}")
    return output, time.monotonic() - started


def group_rss_mb(pgid: int) -> tuple[float, int]:
    """Summed VmRSS of every process in the group (gunicorn's master and workers) and their count.

    Pages the workers share with the master (preload_app) count once per process: an upper bound.
    """
    total_kb, count = 0, 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        if rss:
            total_kb, count = total_kb + int(rss.group(1)), count + 1
    return total_kb / 1024, count


def wait_for_health(base: str, web: subprocess.Popen, log_path: Path) -> float:
    """Seconds from start to the first 200 from /healthz; fails at once if gunicorn dies or says 503."""
    started = time.monotonic()
    while True:
        if web.poll() is not None:
            pytest.fail(
                f"gunicorn (the Procfile's web command) exited with {web.returncode} before serving:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        try:
            with urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except HTTPError as error:
            with error:
                pytest.fail(f"/healthz answered {error.code}: {error.read().decode(errors='replace')}")
        except OSError:
            pass  # not listening yet
        if time.monotonic() - started > BOOT_LIMIT_S:
            pytest.fail(
                f"/healthz did not answer within Heroku's {BOOT_LIMIT_S} s boot limit:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        time.sleep(0.1)


def post_generate(base: str, labels: list[int], seed: int) -> tuple[int, str, bytes]:
    body = json.dumps({"labels": labels, "seed": seed}).encode()
    request = Request(
        base + "/generate",
        data=body,
        headers={"Content-Type": "application/json", "Accept": "image/png"},
        method="POST",
    )
    with urlopen(request, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads memory from /proc, as on a Linux dyno")
def test_the_slug_installs_from_requirements_txt_alone_and_serves_within_the_dyno_limits(tmp_path):
    app = tmp_path / "app"
    for name in pushed_files():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, app / name)
    remove_slugignored(app)

    venv = tmp_path / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True)
    if made.returncode != 0:
        pytest.fail("python -m venv failed:\n" + made.stderr.decode(errors="replace"))
    python = venv / "bin" / "python"
    _, upgrade_s = pip(python, ["--upgrade", "pip", "setuptools"], app, "pip install -U pip setuptools")
    output, install_s = pip(python, ["-r", "requirements.txt"], app, "pip install -r requirements.txt")
    if "Building wheel for chainer" in output:
        pytest.fail("pip built Chainer from its sdist, which fails on Heroku:\n" + output[-4000:])

    procfile = (app / "Procfile").read_text()
    command = re.search(r"^web:\s*(.+)$", procfile, re.M)
    assert command, f"the Procfile has no web: line:\n{procfile}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(app),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "HOST": "127.0.0.1",
    }
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        web = subprocess.Popen(
            ["bash", "-c", command.group(1)],
            cwd=app,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        boot_s = wait_for_health(base, web, log_path)
        for seed in range(12):
            labels = [0] * 10
            labels[seed % 10] = 1
            status, mimetype, png = post_generate(base, labels, 42 + seed)
            assert (status, mimetype) == (200, "image/png"), "POST /generate"
            assert png.startswith(b"\x89PNG\r\n\x1a\n"), "POST /generate answered no PNG"
        status, mimetype, png = post_generate(base, [0, 0, 1, 0, 0, 0, 0, 0, 0, 0], 42)
        assert (status, mimetype, png[:8]) == (200, "image/png", b"\x89PNG\r\n\x1a\n")
        with urlopen(base + "/", timeout=10) as page:
            assert page.status == 200, "GET /"
        rss_mb, processes = group_rss_mb(web.pid)
        assert processes >= 2, f"gunicorn runs {processes} process(es): where are the workers?"
        assert rss_mb < DYNO_MB, f"master and {processes - 1} workers hold {rss_mb:.0f} MB, over {DYNO_MB} MB"
        print(
            f"\ndeploy: pip upgrade {upgrade_s:.1f} s, pip install -r requirements.txt {install_s:.1f} s, "
            f"boot to /healthz {boot_s:.1f} s, RSS {rss_mb:.0f} MB in {processes} processes"
        )
    finally:
        stop(web)


def stop(web: subprocess.Popen) -> None:
    """SIGTERM to gunicorn's process group, as Heroku stops a dyno; SIGKILL if it outlasts 20 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(web.pid, sig)
        except ProcessLookupError:
            pass  # already gone
        try:
            web.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            continue
