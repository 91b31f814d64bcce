"""The JSON API routes (mounted under ``/api`` by :func:`jointspace.server.app.create_app`).

Values are read at this edge by :mod:`jointspace.server.validate` (``k``, item ids, names,
texts) so the engine only ever sees values it can use; what the routes answer is described
by :mod:`jointspace.server.openapi`.
"""

import time
from pathlib import Path

from fastapi import APIRouter, Depends, Path as PathParam, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from ..errors import InputError
from ..towers.inputs import has_visible_text
from .uploads import UploadError, check_audio, classify, decode_audio, decode_image
from .validate import (MAX_TEXT, _parse_int, check_unicode, choice, loads, optional_string, parse_item_id,
                       parse_k, shown)

PLOT_NAMES = ("map", "gallery", "curves")
FORM_FIELDS = ("file", "k", "label", "modality")
JSON_FIELDS = ("text", "item", "k", "label", "modality", "target")
#: the item id in a path, read as text so that ``+12`` or ``12.0`` are refused (see :func:`parse_item_id`)
ITEM_ID = PathParam(alias="id", description="an item id")


def _timed(t0: float, results: list, timings: dict, query: dict) -> dict:
    took = (time.perf_counter() - t0) * 1000
    return {"results": results, "took_ms": round(took, 3), "query": query,
            "timings": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in timings.items()}}


def _modality(engine, value, name: str = "modality"):
    """A result modality (an index name) or the default for None / ``""``."""
    return engine.result_modality(choice(value, name, list(engine.indexes), "the name of one of this server's indexes"))


def _label(state, value):
    if not state.all_labels and value not in (None, ""):
        raise InputError(f"label: expected nothing, as no item of this server has a label, got {shown(value)}")
    return choice(value, "label", sorted(state.all_labels), "a label of this server's items")


def _search(engine, vec, k: int, modality: str, label, exclude=None):
    """(results, ms); a label that no item of this index carries finds nothing (another index has it)."""
    if label is not None and label not in engine.labels(modality):
        return [], 0.0
    results, ms = engine.search(vec, k=k, modality=modality, label=label, exclude=exclude)
    for r in results:   # "item id" in this API is ``id``; the collection's own id of the sample is named apart
        r["sample_id"] = r.pop("item_id", None)
    return results, ms


def _item_id(value, modality: str, name: str = "id") -> int:
    item_id = parse_item_id(value, name)
    if item_id is None:   # a path's '-1' read as a JSON body's -1 is, so both are named alike
        number = _parse_int(value) if isinstance(value, str) else value
        raise LookupError(f"item {shown(number)}: no such item in the {modality} index")
    return item_id


def _only(request: Request, *names: str) -> None:
    """Refuse query parameters a GET route does not take, and any given more than once (the last
    one would silently win), as the JSON body and the form refuse unknown fields."""
    from urllib.parse import unquote_to_bytes

    for part in request.scope.get("query_string", b"").split(b"&"):   # decoded leniently, to U+FFFD
        key, _, value = part.partition(b"=")
        try:
            unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8")
            unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            name = unquote_to_bytes(key).decode("utf-8", "replace")
            raise InputError(f"{name if name.isidentifier() else shown(name)}: expected UTF-8 text, got bytes "
                             f"that are not UTF-8") from None
    keys = [k for k, _ in request.query_params.multi_items()]
    unknown = sorted(set(keys) - set(names))
    if unknown:
        raise InputError(f"query: unknown parameters {', '.join(shown(u) for u in unknown[:5])}; expected "
                         f"{', '.join(names) if names else 'none'}")
    repeated = sorted(k for k in set(keys) if keys.count(k) > 1)
    if repeated:
        raise InputError(f"{repeated[0]}: given {keys.count(repeated[0])} times; expected once")


def _declared_query_only(request: Request) -> None:
    """Every GET (and HEAD) route takes only the query parameters it declares, each once."""
    route = request.scope.get("route")
    if request.method in ("GET", "HEAD") and route is not None:
        _only(request, *(p.alias for p in route.dependant.query_params))


def build_router():
    router = APIRouter(prefix="/api", dependencies=[Depends(_declared_query_only)])

    @router.get("/health", summary="Health check")
    def health(request: Request):
        engine = request.app.state.engine
        return {"status": "ok", "items": {m: ix.ntotal for m, ix in engine.indexes.items()}}

    @router.get("/info", summary="Index and model information")
    def info(request: Request):
        engine = request.app.state.engine
        out = engine.info()
        out["max_upload_bytes"] = request.app.state.max_upload_bytes
        out["plots"] = [n for n in PLOT_NAMES if (request.app.state.plots_dir / f"{n}.png").is_file()]
        return out

    @router.get("/labels", summary="Labels of the indexed items (for the label filter)")
    def labels(request: Request, modality: str | None = Query(None, description="an index (default: the first)")):
        engine = request.app.state.engine
        return {"labels": engine.labels(_modality(engine, modality))}

    @router.get("/search", summary="Search by text")
    def search_text(request: Request, text: str = Query(..., description="the query text"),
                    k: str = Query("10", description="number of results (1 .. max_k)"),
                    label: str | None = Query(None, description="keep only items with this label"),
                    modality: str | None = Query(None, description="modality of the results (an index)"),
                    cache: bool = Query(True, description="use the query-embedding cache")):
        t0 = time.perf_counter()
        return _search_item(request.app.state, t0, "text", text, k, label, modality, cache)

    @router.post("/search", summary="Search by an uploaded image or sound (multipart 'file'), or a JSON body")
    async def search_post(request: Request):
        state = request.app.state
        t0 = time.perf_counter()
        in_url = list(dict.fromkeys(key for key, _ in request.query_params.multi_items()))
        if in_url:   # read from the body only: a ?k=3 here would be silently ignored
            raise InputError(f"query: unknown parameters {', '.join(shown(u) for u in in_url[:5])}; a POST search "
                             "takes k, label and modality as form fields (with the file) or in its JSON body")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            return await _search_json(request, state, t0)
        if ctype != "multipart/form-data":
            raise UploadError(415, f"content type: expected multipart/form-data (a file) or application/json, "
                                   f"got {shown(ctype) if ctype else 'none'}")
        form = await request.form(max_files=len(FORM_FIELDS), max_fields=8)   # a file in a text field: named below
        unknown = sorted(set(form.keys()) - set(FORM_FIELDS))
        if unknown:
            raise InputError(f"form: unknown fields {', '.join(shown(u) for u in unknown[:5])}; expected "
                             f"{', '.join(FORM_FIELDS)}")
        if len(form.getlist("file")) > 1:
            raise InputError(f"file: given {len(form.getlist('file'))} times; expected one uploaded file")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError("file: expected one uploaded file in the form field 'file', got "
                             + ("none" if upload is None else "a text field"))
        name = upload.filename or "upload"
        data = await upload.read(state.max_upload_bytes + 1)
        if len(data) > state.max_upload_bytes:
            raise UploadError(413, f"file {shown(name)}: over the upload limit of {state.max_upload_bytes:,} bytes")
        fields = {}
        for key in ("k", "label", "modality"):
            if len(form.getlist(key)) > 1:
                raise InputError(f"{key}: given {len(form.getlist(key))} times; expected once")
            value = form.get(key)
            if value is not None and not isinstance(value, str):
                raise InputError(f"{key}: expected a text field, got a file")
            fields[key] = value
        k = parse_k("10" if fields["k"] is None else fields["k"], state.engine.max_k)
        label, modality = _label(state, fields["label"]), _modality(state.engine, fields["modality"])
        return await run_in_threadpool(_search_upload, state, t0, data, name, k, label, modality)

    @router.get("/items/{id}", summary="Item details")
    def item(request: Request, item_id: str = ITEM_ID, modality: str | None = None):
        engine = request.app.state.engine
        mod = _modality(engine, modality)
        item_id = _item_id(item_id, mod)
        meta = dict(engine.item(mod, item_id))
        path = meta.pop("path", None)   # the server's file system stays private: only the file name
        extra = meta.get("extra")
        if isinstance(extra, dict) and isinstance(extra.get("paths"), list):   # every copy's path: names only
            meta["extra"] = {**extra, "paths": [Path(str(q)).name for q in extra["paths"]]}
        return {**meta, "modality": mod, "file": Path(path).name if path else None,
                "media_url": f"/api/items/{item_id}/media?modality={mod}" if path else None}

    @router.get("/items/{id}/similar", summary="More like this: items near an indexed item")
    def similar(request: Request, item_id: str = ITEM_ID, k: str = Query("10", description="number of results (1 .. max_k)"),
                modality: str | None = Query(None, description="the index the item is in (default: the first)"),
                target: str | None = Query(None, description="modality of the results (default: the item's)"),
                label: str | None = Query(None, description="keep only items with this label")):
        state = request.app.state
        engine = state.engine
        t0 = time.perf_counter()
        kk = parse_k(k, engine.max_k)
        mod = _modality(engine, modality)
        target = _modality(engine, target, "target") if target else mod
        label = _label(state, label)
        item_id = _item_id(item_id, mod)
        t1 = time.perf_counter()
        vec = engine.item_vector(mod, item_id)
        lookup_ms = (time.perf_counter() - t1) * 1000
        results, search_ms = _search(engine, vec, kk, target, label, exclude=item_id if target == mod else None)
        return _timed(t0, results, {"vector_ms": lookup_ms, "search_ms": search_ms},
                      {"item": item_id, "modality": mod})

    @router.get("/items/{id}/media", summary="The item's media (thumbnail or sound), by id only")
    def media(request: Request, item_id: str = ITEM_ID, modality: str | None = None, full: bool = False):
        from .media import audio_type, sound_file, thumbnail

        engine = request.app.state.engine
        mod = _modality(engine, modality)
        path = engine.media_path(mod, _item_id(item_id, mod))
        kind = audio_type(path)
        if kind:
            return sound_file(path, kind)
        data, mtype = thumbnail(path, full=full, max_pixels=request.app.state.max_pixels)
        return Response(data, media_type=mtype, headers={"Cache-Control": "max-age=3600"})

    @router.get("/plots/{name}.png", summary="A plot of the index ('map', 'gallery', 'curves')")
    def plot(request: Request, name: str):
        if name not in PLOT_NAMES:
            raise LookupError(f"plot {shown(name)}: expected one of {', '.join(PLOT_NAMES)}")
        path = request.app.state.plots_dir / f"{name}.png"
        if not path.is_file():
            raise LookupError(f"plot {name!r}: not made for this index (jointspace plot {name} ...)")
        return FileResponse(path, media_type="image/png")

    # HEAD as GET without the body, on every GET route (uptime checks and link checkers ask with it)
    for route in [r for r in router.routes if "GET" in r.methods]:
        router.add_api_route(route.path[len(router.prefix):], route.endpoint, methods=["HEAD"], include_in_schema=False)
    return router


def _check_text(text) -> str:
    if not isinstance(text, str):
        raise InputError(f"text: expected a string, got {shown(text)}")
    check_unicode(text, "text")
    if not has_visible_text(text):
        raise InputError(f"text: expected a query text with a visible character, got {shown(text)}")
    if len(text) > MAX_TEXT:
        raise InputError(f"text: expected at most {MAX_TEXT:,} characters, got {len(text):,}")
    return text.strip()


def _search_item(state, t0, modality, item, k, label, result_modality, cache=True):
    """Search by one raw query item (a text, a decoded image or waveform)."""
    engine = state.engine
    kk = parse_k(k, engine.max_k)
    label = _label(state, label)
    result_modality = _modality(engine, result_modality)
    if modality == "text":
        item = _check_text(item)
        if "text" not in engine.raw_modalities:
            raise InputError(f"text: this model cannot embed a raw text query; it embeds {_raw_queries(engine)}")
    vec, timings = engine.encode(modality, item, use_cache=cache)
    results, timings["search_ms"] = _search(engine, vec, kk, result_modality, label)
    query = {"modality": modality} | ({"text": item} if modality == "text" else {})
    return _timed(t0, results, timings, query)


def _raw_queries(engine) -> str:
    """What queries the model embeds, said for a message (it may embed none: feature vectors)."""
    if engine.raw_modalities:
        return f"only {', '.join(engine.raw_modalities)} queries"
    return ("no raw queries (its items are feature vectors): search by an item id, 'item' in a JSON body or "
            "/api/items/{id}/similar")


def _search_upload(state, t0, data: bytes, name: str, k: int, label, modality):
    engine = state.engine
    kind = classify(data, name)
    if kind not in engine.raw_modalities:
        raise UploadError(415, f"file {shown(name)} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} file, but this "
                               f"model embeds {_raw_queries(engine)}")
    t1 = time.perf_counter()
    if kind == "image":
        item = decode_image(data, name, max_pixels=state.max_pixels)
    else:
        check_audio(data, name)
        tower = engine.model.tower("audio") if hasattr(engine.model, "tower") else None
        item = decode_audio(data, name, getattr(tower, "sample_rate", None))
    decode_ms = (time.perf_counter() - t1) * 1000
    out = _search_item(state, t0, kind, item, k, label, modality)
    out["timings"]["decode_ms"] = round(decode_ms, 3)
    out["query"].update({"file": name})
    return out


async def _search_json(request, state, t0):
    engine = state.engine
    body = loads(await request.body())
    if not isinstance(body, dict):
        raise InputError(f"request body: expected a JSON object, got {shown(body)}")
    unknown = sorted(set(body) - set(JSON_FIELDS))
    if unknown:
        raise InputError(f"request body: unknown fields {', '.join(shown(u) for u in unknown[:5])}; expected text "
                         "or item, k, label, modality, target (with item)")
    label, modality, target = (optional_string(body, name) for name in ("label", "modality", "target"))
    k = body.get("k", 10)
    if isinstance(k, str):   # a JSON body says numbers as numbers
        raise InputError(f"k: expected an integer from 1 to {engine.max_k}, got a string ({shown(k)})")
    k = parse_k(k, engine.max_k)
    if ("text" in body) == ("item" in body):
        raise InputError("request body: expected exactly one of 'text' (a string) or 'item' (an item id)")
    if "text" in body:
        if target is not None:
            raise InputError("target: only with 'item'; a text query names the results' index with 'modality'")
        text = _check_text(body["text"])
        return await run_in_threadpool(_search_item, state, t0, "text", text, k, label, modality)
    label = _label(state, label)
    mod = _modality(engine, modality)
    to = _modality(engine, target, "target") if target else mod
    if isinstance(body["item"], str):   # a JSON body says numbers as numbers
        raise InputError(f"item: expected an integer item id, got a string ({shown(body['item'])})")
    item_id = _item_id(body["item"], mod, "item")

    def run():
        vec = engine.item_vector(mod, item_id)
        results, ms = _search(engine, vec, k, to, label, exclude=item_id if to == mod else None)
        return _timed(t0, results, {"search_ms": ms}, {"item": item_id, "modality": mod})

    return await run_in_threadpool(run)
