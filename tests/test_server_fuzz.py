"""The HTTP API fuzzed from its own OpenAPI description with schemathesis, every check on.

A real server (uvicorn on a free loopback port) over the tiny colour index; schemathesis'
command line reads ``/openapi.json`` and runs its coverage, fuzzing and stateful phases with
``--checks all``: no server error, every status code, content type and body documented,
schema-valid requests accepted, schema-invalid ones refused, ``Allow`` right on 405.  The
seed is fixed so a run is reproducible; ``JOINTSPACE_FUZZ_SEED`` / ``JOINTSPACE_FUZZ_EXAMPLES``
explore further.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import server_support as sup

pytest.importorskip("schemathesis")
TESTS = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url():
    import uvicorn

    port = _free_port()
    app = sup.make_app(allowed_hosts=["localhost", "127.0.0.1", "[::1]"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_schemathesis_finds_nothing(base_url, tmp_path):
    seed = os.environ.get("JOINTSPACE_FUZZ_SEED", "20201")
    examples = os.environ.get("JOINTSPACE_FUZZ_EXAMPLES", "12")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "NO_COLOR": "1"}
    cmd = [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()", "run",
           f"{base_url}/openapi.json", "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
           "--max-examples", examples, "--seed", seed, "--workers", "1", "--generation-database", "none",
           "--max-failures", "20"]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-12000:]
    assert " passed" in out and "failures" not in out.split("SUMMARY")[-1].lower(), out[-4000:]
    tested = out.split("Tested:")[1].split()[0]
    assert tested == "9", out[-4000:]    # every documented operation was exercised
