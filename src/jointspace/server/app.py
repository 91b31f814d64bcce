"""The FastAPI application: JSON API, media by item id, the static search page.

Build one with :func:`create_app` (the model and indexes load there, once) and run it with
:func:`serve`, which binds to 127.0.0.1 unless told otherwise::

    from jointspace.server.app import serve
    serve("idx/clip-img", "runs/clip", host="127.0.0.1", port=8000)

OpenAPI documentation is at ``/docs`` (and ``/openapi.json``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import InputError, JointspaceError
from .uploads import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, UploadError

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger("jointspace.server")


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 before they are parsed.

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
            try:
                too_big = int(declared) > limit
            except ValueError:
                return await _send_json(send, 400, "Content-Length: expected an integer")
            if too_big:
                return await _send_json(send, 413, _too_big(int(declared), self.max_bytes))
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
                await _send_json(send, 413, _too_big(seen, self.max_bytes))


class _BodyTooLarge(Exception):
    pass


def _too_big(size: int, limit: int) -> str:
    return f"upload too large: {size:,} bytes; the limit is {limit:,} bytes ({limit / 1024 / 1024:g} MB)"


async def _send_json(send, status: int, message: str):
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


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
            parts.append(f"{name}: {msg.lower()}" + ("" if got is None or isinstance(got, dict) else f", got {got!r}"))
    return "; ".join(parts) or "invalid request"


def create_app(index_dirs, model_dir=None, *, max_upload_bytes: int = DEFAULT_MAX_BYTES,
               max_pixels: int = DEFAULT_MAX_PIXELS, cache_size: int = 1024, max_k: int = 1000,
               plots_dir=None, max_batch: int = 32, engine=None):
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

    Returns
    -------
    fastapi.FastAPI
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    from .engine import SearchEngine
    from .routes import build_router

    if engine is None:
        engine = SearchEngine(index_dirs, model_dir, cache_size=cache_size, max_k=max_k, max_batch=max_batch)
    swagger_dir = _swagger_assets()
    app = FastAPI(title="jointspace search", version=_version(), redoc_url=None,
                  docs_url=None if swagger_dir else "/docs",
                  description="Search one joint embedding space by text, image or sound.")
    if swagger_dir:   # the documentation page works offline from the packaged Swagger UI files
        from fastapi.openapi.docs import get_swagger_ui_html

        app.mount("/docs-assets", StaticFiles(directory=str(swagger_dir)), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        def docs():
            return get_swagger_ui_html(openapi_url="/openapi.json", title="jointspace search: API",
                                       swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                       swagger_css_url="/docs-assets/swagger-ui.css",
                                       swagger_favicon_url="/docs-assets/favicon-32x32.png")

    app.state.engine = engine
    app.state.max_upload_bytes = int(max_upload_bytes)
    app.state.max_pixels = int(max_pixels)
    default_plots = Path(engine.index_dirs[engine.default_modality]) / "plots"
    app.state.plots_dir = Path(plots_dir) if plots_dir else default_plots

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, exc: UploadError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(LookupError)
    async def _not_found(request: Request, exc: LookupError):
        return JSONResponse({"detail": str(exc).strip("'\"")}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _format_validation(exc)}, status_code=422)

    @app.exception_handler(JointspaceError)
    async def _runtime(request: Request, exc: JointspaceError):
        log.exception("request failed: %s", exc)
        return JSONResponse({"detail": f"server error: {exc}"}, status_code=500)

    app.include_router(build_router())
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes)
    return app


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
          on_ready=None, **options) -> None:
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
    **options
        Passed to :func:`create_app` (``max_upload_bytes``, ``max_pixels``, ``plots_dir``, ...).
    """
    import uvicorn

    from .._validation import check_int

    port = check_int(port, "port", low=0, high=65535)
    app = create_app(index_dirs, model_dir, **options)
    if on_ready is not None:
        on_ready(f"http://{host if ':' not in host else f'[{host}]'}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level=log_level)
