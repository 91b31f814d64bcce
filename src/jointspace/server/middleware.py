"""ASGI middleware of the service: request body limit, ``Host`` check, security headers.

All three are plain ASGI wrappers, so they also cover responses that never reach FastAPI's
routing (a refused upload, a refused host, the static files).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json

#: hosts accepted when the service is bound to a loopback interface (any port)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: characters of an error message sent to a client at most
MAX_DETAIL = 1000


def error_body(message: str) -> bytes:
    """``{"detail": message}`` as UTF-8 JSON, cut to :data:`MAX_DETAIL` characters, never failing
    on characters that cannot be UTF-8 (they are written as escapes)."""
    message = str(message)
    if len(message) > MAX_DETAIL:
        message = message[:MAX_DETAIL] + f"… ({len(message):,} characters)"
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return json.dumps({"detail": message}, ensure_ascii=False).encode("utf-8")


async def send_error(send, status: int, message: str, headers=()):
    body = error_body(message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before they are parsed.

    A declared ``Content-Length`` over the limit is refused at once; a body streamed without
    one is counted as it arrives and cut off at the limit.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        limit = self.max_bytes + 64 * 1024   # room for the multipart envelope around the file
        if declared is not None:
            if not (declared.isdigit() and len(declared) <= 19):
                return await send_error(send, 400, "Content-Length: expected a non-negative integer")
            if int(declared) > limit:
                return await send_error(send, 413, _too_big(int(declared), self.max_bytes))
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await send_error(send, 413, _too_big(seen, self.max_bytes))


class _BodyTooLarge(Exception):
    pass


def _too_big(size: int, limit: int) -> str:
    return f"upload too large: {size:,} bytes; the limit is {limit:,} bytes ({limit / 1024 / 1024:g} MB)"


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` listens on this machine only."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8000`` -> ``[::1]``, ``Localhost.`` -> ``localhost``)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[:end + 1] if end > 0 else value
    name, _, port = value.partition(":")
    return name.rstrip(".") if not port or port.isdigit() else value


def allowed_host_name(name: str) -> str:
    """``name`` as :class:`HostCheck` compares it with :func:`host_name` of a ``Host`` header:
    lower case, without a final dot, a non-ASCII name in the ASCII form browsers send
    (``bücher.example`` -> ``xn--bcher-kva.example``), an IPv6 address in brackets.

    Raises
    ------
    InputError
        Named ``--allowed-host``: not a host name (empty, spaces, a URL's ``/ @ ? #``), or a
        name with a port (any port is allowed already).
    """
    from ..errors import InputError

    value = str(name).strip()
    expected = f"--allowed-host: expected a host name such as search.example.org, got {name!r}"
    if not value or any(c.isspace() or c in "/@?#" for c in value):
        raise InputError(expected)
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return f"[{ipaddress.IPv6Address(bare).compressed}]"
    except ValueError:
        pass
    if ":" in value:
        raise InputError(f"--allowed-host: expected a host name without a port (every port is allowed), got {name!r}")
    value = value.rstrip(".").lower()
    try:
        value = value.encode("idna").decode("ascii") if not value.isascii() else value
    except UnicodeError:
        raise InputError(f"{expected} (not a valid international domain name)") from None
    if not value:
        raise InputError(expected)
    return value


class HostCheck:
    """Answer 400 to requests whose ``Host`` is not one of ``allowed`` (any port).

    A page on another site cannot then reach a service on 127.0.0.1 by pointing its own
    domain name at 127.0.0.1 (DNS rebinding): the browser sends that domain as ``Host``.
    """

    def __init__(self, app, allowed):
        self.app = app
        self.allowed = tuple(h.lower() for h in allowed)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        raw = dict(scope.get("headers") or []).get(b"host", b"")
        value = raw.decode("latin-1")
        if host_name(value) not in self.allowed:
            shown = value if len(value) <= 60 else value[:60] + "…"
            return await send_error(send, 400, f"Host header: expected one of {', '.join(self.allowed)} (with any "
                                               f"port), got {shown!r}; to serve under another name start the server "
                                               "with --allowed-host NAME")
        return await self.app(scope, receive, send)


def csp(script_hashes=()) -> str:
    """The Content-Security-Policy: only this origin's files; ``script_hashes`` allow named inline scripts."""
    scripts = " ".join(["'self'", *(f"'sha256-{h}'" for h in script_hashes)])
    return ("default-src 'self'; " f"script-src {scripts}; " "style-src 'self'; img-src 'self' data: blob:; "
            "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


def script_hash(script: str) -> str:
    """The base64 SHA-256 of an inline script's text, as CSP's ``'sha256-...'`` wants it."""
    import base64

    return base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


class SecurityHeaders:
    """Add ``X-Content-Type-Options``, ``X-Frame-Options``, ``Referrer-Policy`` and a
    ``Content-Security-Policy`` to every response (``policies`` maps a path to its own CSP)."""

    def __init__(self, app, policy: str, policies=None):
        self.app = app
        self.policy = policy.encode()
        self.policies = {k: v.encode() for k, v in (policies or {}).items()}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        policy = self.policies.get(scope.get("path", ""), self.policy)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"no-referrer"), (b"content-security-policy", policy)]
                message = {**message, "headers": [*message.get("headers", []),
                                                  *[(k, v) for k, v in extra if k not in names]]}
            await send(message)

        await self.app(scope, receive, with_headers)
