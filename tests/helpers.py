"""What several test modules share: small MNIST files, a lively random generator, the Procfile's command."""

import functools
import json
import os
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mnist.data import idx_bytes, write_idx  # noqa: F401  (the tests' MNIST files)
from mnist.data import write_random_mnist_folder as write_mnist_folder  # noqa: F401
from model.classifier import Classifier, save_classifier
from model.export import save_generator
from model.files import METADATA_ENTRY, arrays_sha256, json_bytes, zip_bytes
from model.inference import pictures_version
from model.net import Generator

ROOT = Path(__file__).resolve().parent.parent


def weights_version(app) -> str:
    """The version an app names its pictures by, in URLs and ETags."""
    return pictures_version(app.extensions["networks"].generator.sha256)


def lively_generator(seed: int = 0) -> Generator:
    """An untrained generator with large weights, so that seeds and labels change many pixels.

    Default (N(0, 0.02)) weights draw every picture as flat grey 127-128, which would let a
    test pass while the seed or the labels are ignored.
    """
    gen = Generator(ch=16)
    rng = np.random.RandomState(seed)
    for _, param in sorted(gen.namedparams()):
        if param.ndim > 1:
            param.array[...] = rng.normal(0, 0.3, param.shape)
    return gen


def save(gen: Generator, folder: Path, note: str) -> Path:
    save_generator(gen, folder, {"epochs": 0, "note": note})
    return folder


def rewrite_weights(
    path: Path,
    arrays: Callable[[dict[str, bytes]], None] = lambda entries: None,
    metadata: Callable[[dict], None] = lambda metadata: None,
) -> None:
    """The weights file at `path` written again with its array entries (name -> npy bytes) changed by
    arrays(entries) and its metadata by metadata(dict), the sha256 of the arrays it then holds recorded:
    a file that passes the sha256 check, so that whatever refuses it must look at what it holds."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    recorded = json.loads(entries.pop(METADATA_ENTRY))
    arrays(entries)
    metadata(recorded)
    recorded["sha256"] = arrays_sha256(entries)
    path.write_bytes(zip_bytes({**entries, METADATA_ENTRY: json_bytes(recorded)}))


def garbage_arrays(entries: dict[str, bytes]) -> None:
    """Every array entry's bytes replaced by as many random bytes (for rewrite_weights)."""
    rng = np.random.RandomState(0)
    for name, data in entries.items():
        entries[name] = rng.bytes(len(data))


def save_small_classifier(folder: Path, seed: int = 0) -> Path:
    """A small random MNIST classifier (classifier.npz and .json) in `folder`, beside a generator."""
    clf = Classifier(ch=4, n_features=8)
    rng = np.random.RandomState(seed)
    for _, param in sorted(clf.namedparams()):
        param.array[...] = rng.normal(0, 0.5, param.shape)
    save_classifier(clf, folder, {"note": "random weights for the tests"})
    return folder


# The Nu HTML checker: Debian's Java and the vnu-jar package from the npm registry (`make nu`).
NU_JAR = ROOT / ".nu" / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"


def nu_errors(pages: dict[str, str], folder: Path) -> list[str]:
    """The Nu HTML checker's errors for each named HTML text, as 'name:line: message'; skips without it."""
    if shutil.which("java") is None or not NU_JAR.exists():
        pytest.skip(f"the Nu HTML checker needs java and {NU_JAR.relative_to(ROOT)}: run `make nu`")
    paths = []
    for name, html in pages.items():
        paths.append(folder / f"{name}.html")
        paths[-1].write_text(html)
    done = subprocess.run(
        ["java", "-jar", str(NU_JAR), "--format", "json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    messages = json.loads(done.stderr)["messages"]
    return [
        f"{Path(m['url']).stem}:{m.get('lastLine')}: {m['message']}"
        for m in messages
        if m["type"] == "error" or m.get("subType") == "fatal"
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def web_command() -> list[str]:
    """The Procfile's `web:` line, with its program taken from this Python's environment."""
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")]
    assert len(lines) == 1, "the Procfile needs exactly one web: line"
    command = shlex.split(lines[0].removeprefix("web:"))
    assert command[:2] == ["gunicorn", "app:app"]
    program = Path(sys.executable).parent / command[0]
    return [str(program) if program.exists() else command[0], *command[1:]]


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get_content_type(), error.read()


@dataclass
class Served:
    """A server started by procfile_server: its URL and port, its master's pid, and its log."""

    base: str
    port: int
    pid: int
    log: list[str]  # the server's whole output, once it stopped

    def worker_pids(self) -> list[int]:
        return [int(pid) for pid in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]


@contextmanager
def procfile_server(command: list[str] | None = None, max_descriptors: int | None = None, **settings: str):
    """The Procfile's command (or `command`) on a free loopback port with these environment settings.

    The output goes to a file, so that a chatty server never blocks on a full pipe.
    """
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", **settings}  # loopback only in tests
    limit = None
    if max_descriptors:
        limit = functools.partial(resource.setrlimit, resource.RLIMIT_NOFILE, (max_descriptors,) * 2)
    output = tempfile.TemporaryFile()
    server = subprocess.Popen(
        command or web_command(), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, preexec_fn=limit
    )
    base = f"http://127.0.0.1:{port}"
    log = []
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                output.seek(0)
                raise AssertionError(output.read().decode(errors="replace"))
            try:
                get(f"{base}/healthz")
                break
            except OSError:  # not listening yet
                assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
                time.sleep(0.2)
        yield Served(base, port, server.pid, log)
    finally:
        server.terminate()
        server.wait(timeout=30)
        output.seek(0)
        log.append(output.read().decode(errors="replace"))
        output.close()


def head_and_body(answer: bytes) -> tuple[str, dict, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}, body
