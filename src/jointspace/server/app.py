"""The FastAPI application: JSON API, media by item id, the static search page.

Build one with :func:`create_app` (the model and indexes load there, once) and run it with
:func:`serve`, which binds to 127.0.0.1 unless told otherwise::

    from jointspace.server.app import serve
    serve("idx/clip-img", "runs/clip", host="127.0.0.1", port=8000)

OpenAPI documentation is at ``/docs`` (and ``/openapi.json``, see
:mod:`jointspace.server.openapi`).  Every response carries security headers (a
Content-Security-Policy, ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``);
:func:`serve` bound to loopback answers only requests addressed to localhost (see
:class:`jointspace.server.middleware.HostCheck`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..errors import InputError, JointspaceError
from .middleware import LOOPBACK_HOSTS, BodyLimit, HostCheck, SecurityHeaders, csp, error_body, is_loopback, script_hash
from .uploads import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, UploadError
from .validate import shown

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger("jointspace.server")


def _format_validation(exc) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "form")]
        name = ".".join(loc) or "request"
        got = err.get("input")
        msg = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            parts.append(f"request body is not valid JSON ({err.get('ctx', {}).get('error', msg)})")
        else:
            shown_got = "" if got is None or isinstance(got, dict) else f", got {shown(got)}"
            parts.append(f"{name}: {msg.lower()}{shown_got}")
    return "; ".join(parts) or "invalid request"


def _error(status: int, message: str, headers=None):
    from fastapi.responses import Response

    return Response(error_body(message), status_code=status, media_type="application/json", headers=headers)


def allowed_hosts_for(host: str, extra=()) -> list | None:
    """The ``Host`` names a server bound to ``host`` answers: localhost's names when bound to
    loopback, plus ``extra``; None (any) when bound elsewhere and no ``extra`` is given, or
    when ``extra`` holds ``"*"``."""
    extra = [h.strip().lower() for h in extra if h.strip()]
    if "*" in extra:
        return None
    if is_loopback(host):
        return [*LOOPBACK_HOSTS, *[h for h in extra if h not in LOOPBACK_HOSTS]]
    return extra or None


def create_app(index_dirs, model_dir=None, *, max_upload_bytes: int = DEFAULT_MAX_BYTES,
               max_pixels: int = DEFAULT_MAX_PIXELS, cache_size: int = 1024, max_k: int = 1000,
               plots_dir=None, max_batch: int = 32, engine=None, allowed_hosts=None):
    """Build the application; the model and the indexes are loaded here, once.

    Parameters
    ----------
    index_dirs : path or list of paths
        Index folders (one per result modality).
    model_dir : path, optional
        Saved model folder (default: the one the first index records).
    max_upload_bytes : int
        Largest accepted request body for uploads (default 10 MB); larger ones get 413.
    max_pixels : int
        Largest accepted image (width x height); larger ones get 413 before decoding.
    cache_size : int
        Text query embeddings kept in the LRU cache.
    max_k : int
        Largest accepted ``k``.
    max_batch : int
        Concurrent text queries are encoded together in batches of up to this many (image
        and audio queries up to 8); 1 encodes each alone.
    plots_dir : path, optional
        Folder of PNG plots shown on the page's "about this index" panel (default: a
        ``plots`` folder inside the first index folder, if any).
    engine : SearchEngine, optional
        An engine already loaded (tests share one between apps).
    allowed_hosts : list of str, optional
        ``Host`` names answered (any port); others get 400.  None answers any (see
        :func:`allowed_hosts_for`, which :func:`serve` uses).

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    InputError
        ``max_upload_bytes``, ``max_pixels``, ``max_k`` or ``max_batch`` not an integer >= 1,
        ``cache_size`` not one >= 0, or the indexes and model refused as
        :class:`~jointspace.server.engine.SearchEngine` refuses them.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    from .._validation import check_int
    from .engine import SearchEngine
    from .openapi import describe
    from .routes import build_router

    max_upload_bytes = check_int(max_upload_bytes, "max_upload_bytes", low=1)
    max_pixels = check_int(max_pixels, "max_pixels", low=1)
    if engine is None:
        engine = SearchEngine(index_dirs, model_dir, cache_size=cache_size, max_k=max_k, max_batch=max_batch)
    swagger_dir = _swagger_assets()
    docs_page = None

    class App(FastAPI):
        def build_middleware_stack(self):   # outermost, so even a server error carries the headers
            policies = {"/docs": csp([script_hash(s) for s in _inline_scripts(docs_page)])} if docs_page else {}
            return SecurityHeaders(super().build_middleware_stack(), csp(), policies)

    app = App(title="jointspace search", version=_version(), redoc_url=None,
              docs_url=None if swagger_dir else "/docs",
              description="Search one joint embedding space by text, image or sound.")
    if swagger_dir:   # the documentation page works offline from the packaged Swagger UI files
        from fastapi.openapi.docs import get_swagger_ui_html

        app.mount("/docs-assets", StaticFiles(directory=str(swagger_dir)), name="docs-assets")
        docs_page = get_swagger_ui_html(openapi_url="/openapi.json", title="jointspace search: API",
                                        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                        swagger_css_url="/docs-assets/swagger-ui.css",
                                        swagger_favicon_url="/docs-assets/favicon-32x32.png").body.decode()

        @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
        def docs():
            from fastapi.responses import HTMLResponse

            return HTMLResponse(docs_page)

    app.state.engine = engine
    app.state.max_upload_bytes = int(max_upload_bytes)
    app.state.max_pixels = int(max_pixels)
    app.state.all_labels = frozenset(lab for m in engine.indexes for lab in engine.labels(m))
    default_plots = Path(engine.index_dirs[engine.default_modality]) / "plots"
    app.state.plots_dir = Path(plots_dir).expanduser() if plots_dir else default_plots

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        return _error(422, str(exc))

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, exc: UploadError):
        return _error(exc.status, exc.message)

    @app.exception_handler(LookupError)
    async def _not_found(request: Request, exc: LookupError):
        return _error(404, str(exc).strip("'\""))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return _error(422, _format_validation(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 405:   # every method of the path, not only those of the first route matched
            methods = _methods_of(app.openapi(), request.url.path)
            if methods:
                headers["Allow"] = ", ".join(methods)
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return _error(exc.status_code, detail, headers or None)

    @app.exception_handler(JointspaceError)
    async def _runtime(request: Request, exc: JointspaceError):
        log.exception("request failed: %s", exc)
        return _error(500, f"server error: {exc}")

    app.include_router(build_router())
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
    def icon():   # where a browser looks on pages that name no icon (/docs, /openapi.json)
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    def openapi():
        if app.openapi_schema is None:
            app.openapi_schema = describe(app)
        return app.openapi_schema

    app.openapi = openapi
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)
    return app


def _methods_of(doc: dict, path: str) -> list:
    """The methods the OpenAPI document ``doc`` gives ``path`` (and HEAD, which every GET route
    answers), sorted."""
    for template, ops in doc.get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods = {m.upper() for m in ops}
            return sorted(methods | ({"HEAD"} if "GET" in methods else set()))
    return []


def _inline_scripts(html: str) -> list:
    """The text of each ``<script>`` without ``src`` in ``html`` (for their CSP hashes)."""
    return re.findall(r"<script>(.*?)</script>", html, flags=re.S)


def _swagger_assets():
    """The folder of Swagger UI's files from ``swagger-ui-bundle-v2`` (None when not installed)."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    folder = Path(swagger_ui_bundle.swagger_ui_path)
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _version() -> str:
    from .. import __version__

    return __version__


def serve(index_dirs, model_dir=None, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info",
          on_ready=None, allowed_hosts=(), **options) -> None:
    """Load the model and indexes, then run the service under uvicorn until interrupted.

    Parameters
    ----------
    index_dirs : path or list of paths
    model_dir : path, optional
    host : str
        Interface to bind; 127.0.0.1 (loopback only) unless told otherwise.
    port : int
    on_ready : callable, optional
        Called with the page's URL once the app is loaded, before serving (e.g. to print it).
    allowed_hosts : sequence of str
        More ``Host`` names to answer besides localhost's when bound to loopback (``"*"``:
        any); when bound elsewhere, the only names answered (default: any).
    **options
        Passed to :func:`create_app` (``max_upload_bytes``, ``max_pixels``, ``plots_dir``, ...).
    """
    import uvicorn

    from .._validation import check_int

    port = check_int(port, "port", low=0, high=65535)
    app = create_app(index_dirs, model_dir, allowed_hosts=allowed_hosts_for(host, allowed_hosts), **options)
    if on_ready is not None:
        on_ready(f"http://{host if ':' not in host else f'[{host}]'}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level=log_level)
