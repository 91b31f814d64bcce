"""The HTTP API fuzzed from its own OpenAPI description with schemathesis, every check on.

A real server (uvicorn on a free loopback port) over the tiny colour index; schemathesis'
command line reads ``/openapi.json`` and runs its coverage, fuzzing and stateful phases with
``--checks all``: no server error, every status code, content type and body documented,
schema-valid requests accepted, schema-invalid ones refused, ``Allow`` right on 405.  The
seed is fixed so a run is reproducible; ``JOINTSPACE_FUZZ_SEED`` / ``JOINTSPACE_FUZZ_EXAMPLES``
explore further.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import server_support as sup

pytest.importorskip("schemathesis")
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def base_url():
    with sup.running_server(sup.make_app(allowed_hosts=["localhost", "127.0.0.1", "[::1]"]), log_level="error") as url:
        yield url


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


def test_the_described_text_rule_is_the_servers():
    import re

    from jointspace.server.validate import visible_pattern
    from jointspace.towers.inputs import has_visible_text

    visible = re.compile(visible_pattern())
    invisible_only = re.compile("^[^" + visible_pattern()[1:-1] + "]*$")
    mismatched = [hex(c) for c in range(0x110000) if bool(visible.fullmatch(chr(c))) != has_visible_text(chr(c))]
    assert mismatched == []
    for text in ("a", " \u200b\ufeff", "\x00", "  x  ", "\u3000", "\U0001f600", "\ue000"):
        assert (invisible_only.match(text) is None) == has_visible_text(text), repr(text)


def test_the_description_names_this_servers_indexes_labels_and_limits():
    from fastapi.testclient import TestClient

    spec = TestClient(sup.make_app()).get("/openapi.json").json()
    params = {p["name"]: p["schema"] for p in spec["paths"]["/api/items/{id}/similar"]["get"]["parameters"]}
    assert params["k"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10,
                           "description": "number of results (1 .. 1000)"}
    assert params["modality"]["enum"] == ["", "image", "text"] and params["target"]["enum"] == ["", "image", "text"]
    assert params["label"]["enum"] == ["", *sorted(sup.COLOURS)] and params["id"]["type"] == "integer"
    post = spec["paths"]["/api/search"]["post"]
    assert set(post["responses"]) == {"200", "400", "404", "413", "415", "422", "429"}
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    media = spec["paths"]["/api/items/{id}/media"]["get"]["responses"]["200"]["content"]
    assert "image/png" in media and "audio/wav" in media


def test_every_get_operation_documents_its_answer_to_an_unknown_parameter():
    """Every GET route refuses a query parameter it does not take (422): the description says
    so for each, as it does for the status of every other answer."""
    from fastapi.testclient import TestClient

    client = TestClient(sup.make_app())
    spec = client.get("/openapi.json").json()
    gets = [path for path, ops in spec["paths"].items() if "get" in ops]
    assert len(gets) == 8
    for path in gets:
        url = path.replace("{id}", "0").replace("{name}", "map")
        r = client.get(url, params={"no_such_parameter": "1"})
        assert r.status_code == 422 and "no_such_parameter" in r.json()["detail"], (url, r.text)
        assert "422" in spec["paths"][path]["get"]["responses"], path
