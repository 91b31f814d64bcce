"""The JSON API routes (mounted under ``/api`` by :func:`jointspace.server.app.create_app`)."""

import json
import time
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from ..errors import InputError
from ..towers.inputs import has_visible_text
from .uploads import UploadError, check_audio, classify, decode_audio, decode_image

PLOT_NAMES = ("map", "gallery", "curves")

#: ``k`` is read as text so that a bad value gets this service's own message (see :func:`_k`);
#: the documentation still shows it as the integer it is
K_QUERY = {"description": "number of results (1 .. max_k)", "json_schema_extra": {"type": "integer", "minimum": 1}}


def _timed(engine, t0: float, results: list, timings: dict, query: dict) -> dict:
    took = (time.perf_counter() - t0) * 1000
    return {"results": results, "took_ms": round(took, 3), "query": query,
            "timings": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in timings.items()}}


def _k(value, engine) -> int:
    """``k`` from a query string or a form / JSON field, with one clear message when out of range."""
    if isinstance(value, str):
        digits = value.strip()
        # plain ASCII digits only: int() would also take "1_0" and full-width digits
        if not (digits.isascii() and digits.isdigit()):
            raise InputError(f"k: expected an integer from 1 to {engine.max_k}, got {value!r}")
        value = int(digits)
    return engine.check_k(value)


def _field(body: dict, name: str):
    """An optional string field of a JSON body (None when absent or null)."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InputError(f"{name}: expected a string, got {type(value).__name__}")
    return value


def _opt(value):
    if value is None:
        return None
    value = str(value)
    return value if value.strip() else None


def build_router():
    router = APIRouter(prefix="/api")

    @router.get("/health", summary="Health check")
    def health(request: Request):
        engine = request.app.state.engine
        return {"status": "ok", "items": {m: ix.ntotal for m, ix in engine.indexes.items()}}

    router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)   # uptime checks

    @router.get("/info", summary="Index and model information")
    def info(request: Request):
        engine = request.app.state.engine
        out = engine.info()
        out["max_upload_bytes"] = request.app.state.max_upload_bytes
        out["plots"] = [n for n in PLOT_NAMES if (request.app.state.plots_dir / f"{n}.png").is_file()]
        return out

    @router.get("/labels", summary="Labels of the indexed items (for the label filter)")
    def labels(request: Request, modality: str | None = None):
        return {"labels": request.app.state.engine.labels(modality)}

    @router.get("/search", summary="Search by text")
    def search_text(request: Request, text: str = Query(..., description="the query text"),
                    k: str = Query(10, **K_QUERY),
                    label: str | None = Query(None, description="keep only items with this label"),
                    modality: str | None = Query(None, description="modality of the results (an index)"),
                    cache: bool = Query(True, description="use the query-embedding cache")):
        engine = request.app.state.engine
        t0 = time.perf_counter()
        return _search_item(engine, t0, "text", text, k, label, modality, cache)

    @router.post("/search", summary="Search by an uploaded image or sound (multipart 'file'), or a JSON body",
                 openapi_extra={"requestBody": {"content": {
                     "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                         "file": {"type": "string", "format": "binary"}, "k": {"type": "integer"},
                         "label": {"type": "string"}, "modality": {"type": "string"}}}},
                     "application/json": {"schema": {"type": "object", "properties": {
                         "text": {"type": "string"}, "item": {"type": "integer"}, "k": {"type": "integer"},
                         "label": {"type": "string"}, "modality": {"type": "string"},
                         "target": {"type": "string", "description": "with item: the results' modality"}}}}}}})
    async def search_post(request: Request):
        engine = request.app.state.engine
        t0 = time.perf_counter()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            return await _search_json(request, engine, t0, run_in_threadpool)
        if ctype != "multipart/form-data":
            raise UploadError(415, f"content type: expected multipart/form-data (a file) or application/json, "
                                   f"got {ctype or 'none'!r}")
        form = await request.form(max_files=1, max_fields=8)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError("file: expected one uploaded file in the form field 'file', got none")
        name = upload.filename or "upload"
        data = await upload.read(request.app.state.max_upload_bytes + 1)
        if len(data) > request.app.state.max_upload_bytes:
            raise UploadError(413, f"file {name!r}: over the upload limit of {request.app.state.max_upload_bytes:,} "
                                   "bytes")
        k, label, modality = form.get("k", "10"), _opt(form.get("label")), _opt(form.get("modality"))
        return await run_in_threadpool(_search_upload, request.app.state, t0, data, name, k, label, modality)

    @router.get("/items/{item_id}", summary="Item details")
    def item(request: Request, item_id: int, modality: str | None = None):
        engine = request.app.state.engine
        mod = engine.result_modality(modality)
        meta = dict(engine.item(mod, item_id))
        path = meta.pop("path", None)   # the server's file system stays private: only the file name
        return {**meta, "modality": mod, "file": Path(path).name if path else None,
                "media_url": f"/api/items/{item_id}/media?modality={mod}" if path else None}

    @router.get("/items/{item_id}/similar", summary="More like this: items near an indexed item")
    def similar(request: Request, item_id: int, k: str = Query(10, **K_QUERY), modality: str | None = None,
                target: str | None = Query(None, description="modality of the results (default: the item's)"),
                label: str | None = None):
        engine = request.app.state.engine
        t0 = time.perf_counter()
        kk = _k(k, engine)
        mod = engine.result_modality(modality)
        t1 = time.perf_counter()
        vec = engine.item_vector(mod, item_id)
        lookup_ms = (time.perf_counter() - t1) * 1000
        target = engine.result_modality(target or mod)
        results, search_ms = engine.search(vec, k=kk, modality=target, label=_opt(label),
                                           exclude=item_id if target == mod else None)
        return _timed(engine, t0, results, {"vector_ms": lookup_ms, "search_ms": search_ms},
                      {"item": item_id, "modality": mod})

    @router.get("/items/{item_id}/media", summary="The item's media (thumbnail or sound), by id only")
    def media(request: Request, item_id: int, modality: str | None = None, full: bool = False):
        from .media import audio_type, thumbnail

        engine = request.app.state.engine
        path = engine.media_path(modality, item_id)
        kind = audio_type(path)
        if kind:
            return FileResponse(path, media_type=kind)
        data, mtype = thumbnail(path, full=full, max_pixels=request.app.state.max_pixels)
        return Response(data, media_type=mtype, headers={"Cache-Control": "max-age=3600"})

    @router.get("/plots/{name}.png", summary="A plot of the index ('map', 'gallery', 'curves')")
    def plot(request: Request, name: str):
        if name not in PLOT_NAMES:
            raise LookupError(f"plot {name!r}: expected one of {', '.join(PLOT_NAMES)}")
        path = request.app.state.plots_dir / f"{name}.png"
        if not path.is_file():
            raise LookupError(f"plot {name!r}: not made for this index (jointspace plot {name} ...)")
        return FileResponse(path, media_type="image/png")

    return router


def _search_item(engine, t0, modality, item, k, label, result_modality, cache=True):
    kk = _k(k, engine)
    if modality == "text":
        if not isinstance(item, str) or not has_visible_text(item):
            raise InputError(f"text: expected a query text with a visible character, got {item!r}")
        if len(item) > 2000:
            raise InputError(f"text: expected at most 2,000 characters, got {len(item):,}")
        item = item.strip()
    vec, timings = engine.encode(modality, item, use_cache=cache)
    results, search_ms = engine.search(vec, k=kk, modality=result_modality, label=_opt(label))
    timings["search_ms"] = search_ms
    query = {"modality": modality} | ({"text": item} if modality == "text" else {})
    return _timed(engine, t0, results, timings, query)


def _search_upload(state, t0, data: bytes, name: str, k, label, modality):
    engine = state.engine
    _k(k, engine)
    kind = classify(data, name)
    if kind not in engine.raw_modalities:
        raise UploadError(415, f"file {name!r} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} file, but this model "
                               f"embeds only {', '.join(engine.raw_modalities) or 'no raw'} queries")
    t1 = time.perf_counter()
    if kind == "image":
        item = decode_image(data, name, max_pixels=state.max_pixels)
    else:
        check_audio(data, name)
        tower = engine.model.tower("audio") if hasattr(engine.model, "tower") else None
        item = decode_audio(data, name, getattr(tower, "sample_rate", None))
    decode_ms = (time.perf_counter() - t1) * 1000
    out = _search_item(engine, t0, kind, item, k, label, modality)
    out["timings"]["decode_ms"] = round(decode_ms, 3)
    out["query"].update({"file": name})
    return out


async def _search_json(request, engine, t0, run_in_threadpool):
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"request body is not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError("request body is not valid JSON (nested too deeply)") from None
    if not isinstance(body, dict):
        raise InputError(f"request body: expected a JSON object, got {type(body).__name__}")
    unknown = set(body) - {"text", "item", "k", "label", "modality", "target"}
    if unknown:
        raise InputError(f"request body: unknown fields {', '.join(sorted(unknown))}; expected text or item, "
                         "k, label, modality, target (with item)")
    label, modality, target = (_field(body, name) for name in ("label", "modality", "target"))
    k = body.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, (int, str)):
        raise InputError(f"k: expected an integer from 1 to {engine.max_k}, got {k!r}")
    if ("text" in body) == ("item" in body):
        raise InputError("request body: expected exactly one of 'text' (a string) or 'item' (an item id)")
    if "text" in body:
        if not isinstance(body["text"], str):
            raise InputError(f"text: expected a string, got {type(body['text']).__name__}")
        if target is not None:
            raise InputError("target: only with 'item'; a text query names the results' index with 'modality'")
        return await run_in_threadpool(_search_item, engine, t0, "text", body["text"], k, label, modality)
    item_id = body["item"]
    if isinstance(item_id, bool) or not isinstance(item_id, int):
        raise InputError(f"item: expected an integer item id, got {item_id!r}")

    def run():
        kk = _k(k, engine)
        mod = engine.result_modality(modality)
        vec = engine.item_vector(mod, item_id)
        to = engine.result_modality(target or mod)
        results, ms = engine.search(vec, k=kk, modality=to, label=_opt(label),
                                    exclude=item_id if to == mod else None)
        return _timed(engine, t0, results, {"search_ms": ms}, {"item": item_id, "modality": mod})

    return await run_in_threadpool(run)
