"""The Host header check against DNS rebinding: which names each bind address allows, and
names given with --allowed-host compared as browsers send them."""

import pytest
from fastapi.testclient import TestClient

import server_support as sup


@pytest.mark.parametrize("host,ok", [("localhost:8000", True), ("127.0.0.1:8000", True), ("[::1]:8000", True),
                                     ("LOCALHOST", True), ("evil.example", False), ("evil.example:8000", False),
                                     ("127.0.0.1.evil.example", False), ("localhost@evil.example", False),
                                     ("", False)])
def test_host_check_against_dns_rebinding(host, ok):
    from jointspace.server.app import allowed_hosts_for

    c = TestClient(sup.make_app(allowed_hosts=allowed_hosts_for("127.0.0.1")))
    r = c.get("/api/health", headers={"host": host})
    if ok:
        assert r.status_code == 200
    else:
        assert r.status_code == 400 and "Host header: expected one of localhost, 127.0.0.1, [::1]" in r.json()["detail"]
        assert "--allowed-host" in r.json()["detail"] and r.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("given,header", [("Search.Example.ORG.", "search.example.org:8000"),
                                          ("bücher.example", "xn--bcher-kva.example"),
                                          ("::1", "[::1]:8000"), ("[0:0:0:0:0:0:0:1]", "[::1]")])
def test_an_allowed_host_is_compared_as_browsers_send_it(given, header):
    """--allowed-host in any case, with a final dot, a non-ASCII name or a bare IPv6 address
    matches the Host header a browser sends for it (none of these ever matched)."""
    from jointspace.server.app import allowed_hosts_for
    from jointspace.server.middleware import allowed_host_name

    c = TestClient(sup.make_app(allowed_hosts=allowed_hosts_for("0.0.0.0", [allowed_host_name(given)])))
    assert c.get("/api/health", headers={"host": header}).status_code == 200
    assert c.get("/api/health", headers={"host": "evil.example"}).status_code == 400


def test_an_allowed_host_with_a_port_is_refused(tmp_path, capsys):
    from jointspace.cli import main

    assert main(["serve", "--index", str(tmp_path), "--allowed-host", "search.example.org:8080"]) == 2
    err = capsys.readouterr().err
    assert "--allowed-host: expected a host name without a port (every port is allowed)" in err, err
    assert len(err.strip().splitlines()) == 1


def test_allowed_hosts_follow_the_bind_address():
    from jointspace.server.app import allowed_hosts_for

    assert allowed_hosts_for("127.0.0.1") == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts_for("::1", ["Search.Lan"]) == ["localhost", "127.0.0.1", "[::1]", "search.lan"]
    assert allowed_hosts_for("localhost", ["*"]) is None
    assert allowed_hosts_for("0.0.0.0") is None                     # bound elsewhere: the user decides
    assert allowed_hosts_for("0.0.0.0", ["search.lan"]) == ["search.lan"]


def test_serve_checks_the_host_by_default(monkeypatch):
    import uvicorn

    from jointspace.server import app as app_module

    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw))
    create = app_module.create_app
    monkeypatch.setattr(app_module, "create_app", lambda *a, **kw: create(None, engine=sup.engine(), **kw))
    app_module.serve(None, port=8123)
    c = TestClient(captured["app"])
    assert captured["host"] == "127.0.0.1"
    assert c.get("/api/health", headers={"host": "localhost:8123"}).status_code == 200
    assert c.get("/api/health", headers={"host": "attacker.example:8123"}).status_code == 400
