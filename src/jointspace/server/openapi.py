"""The OpenAPI description of the service: what each route takes and every answer it gives.

FastAPI writes the skeleton from the routes (paths, summaries, parameter names); this module
states what the routes really accept and return, which depends on the loaded indexes: the
index names (``modality``, ``target``), the labels (``label``), ``max_k`` (``k``), the request
bodies of ``POST /api/search``, every status code with its body and content type.  The
schemathesis test (``tests/test_server_fuzz.py``) checks the service against it.
"""

from __future__ import annotations

from .validate import MAX_TEXT, visible_pattern

#: labels listed in the description at most; beyond, ``label`` is described as any string
MAX_LISTED_LABELS = 10_000

_ERROR = {"$ref": "#/components/schemas/Error"}
_NULLABLE_STR = {"type": ["string", "null"]}

SCHEMAS = {
    "Error": {"type": "object", "required": ["detail"], "properties": {
        "detail": {"type": "string", "description": "what was wrong, naming the field"}}},
    "Result": {"type": "object", "required": ["id", "score", "modality"], "properties": {
        "id": {"type": "integer"}, "score": {"type": "number"}, "label": _NULLABLE_STR, "text": _NULLABLE_STR,
        "title": _NULLABLE_STR, "modality": {"type": "string"},
        "sample_id": {"type": ["string", "null"], "description": "the sample's own id in the collection"},
        "copies": {"type": "integer", "minimum": 1}, "media_url": _NULLABLE_STR}},
    "SearchResponse": {"type": "object", "required": ["results", "took_ms", "query", "timings"], "properties": {
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
        "took_ms": {"type": "number", "minimum": 0},
        "query": {"type": "object", "description": "the query as understood (modality, text, file or item)"},
        "timings": {"type": "object", "additionalProperties": {"type": ["number", "boolean"]},
                    "description": "milliseconds per step; 'cached' says whether the embedding was cached"}}},
    "Item": {"type": "object", "required": ["id", "modality", "file", "media_url"], "properties": {
        "id": {"type": "integer"}, "modality": {"type": "string"}, "file": _NULLABLE_STR, "media_url": _NULLABLE_STR,
        "text": _NULLABLE_STR}},
    "Health": {"type": "object", "required": ["status", "items"], "properties": {
        "status": {"type": "string", "enum": ["ok"]},
        "items": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}}},
    "Info": {"type": "object", "required": ["model", "indexes", "max_k", "max_upload_bytes", "plots"], "properties": {
        "model": {"type": "object"}, "indexes": {"type": "object"}, "max_k": {"type": "integer", "minimum": 1},
        "max_upload_bytes": {"type": "integer", "minimum": 1}, "cache": {"type": "object"},
        "batching": {"type": "object"}, "plots": {"type": "array", "items": {"type": "string"}}}},
    "Labels": {"type": "object", "required": ["labels"], "properties": {
        "labels": {"type": "array", "items": {"type": "string"}}}},
}

_STATUS_TEXT = {400: "Bad request (malformed form data, Content-Length or a Host this server does not answer)",
                404: "No such item, plot or media", 413: "Upload too large (bytes, pixels, decoded size or length)",
                415: "Unsupported content type or file kind",
                416: "Range header past the end of the sound file",
                429: "Too many images being decoded at once; try again",
                422: "Invalid parameter or field (the message names it)"}


def _json(ref: str) -> dict:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _errors(*codes: int) -> dict:
    return {str(c): {"description": _STATUS_TEXT[c], "content": {"application/json": {"schema": _ERROR}}}
            for c in (400, *codes)}


#: (method, path) -> the 200 answer and the error statuses it can give (besides 400); every GET
#: route answers 422 to a query parameter it does not take, or one given twice
OPERATIONS = {
    ("get", "/api/health"): ({"description": "The service is up", **_json("Health")}, (422,)),
    ("get", "/api/info"): ({"description": "Model, indexes and limits", **_json("Info")}, (422,)),
    ("get", "/api/labels"): ({"description": "The labels of one index", **_json("Labels")}, (422,)),
    ("get", "/api/search"): ({"description": "The best matches", **_json("SearchResponse")}, (422,)),
    ("post", "/api/search"): ({"description": "The best matches", **_json("SearchResponse")}, (404, 413, 415, 422, 429)),
    ("get", "/api/items/{id}"): ({"description": "The item's metadata", **_json("Item")}, (404, 422)),
    ("get", "/api/items/{id}/similar"): ({"description": "Items near this one", **_json("SearchResponse")},
                                              (404, 422)),
    ("get", "/api/items/{id}/media"): (
        {"description": "A PNG thumbnail (or the full image) or the sound file",
         "content": {t: {"schema": {"type": "string", "format": "binary"}}
                     for t in ("image/png", "audio/wav", "audio/flac", "audio/ogg", "audio/mpeg", "audio/aiff")}},
        (404, 416, 422, 429)),
    ("get", "/api/plots/{name}.png"): (
        {"description": "The plot", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        (404, 422)),
}


def describe(app) -> dict:
    """The OpenAPI document of ``app`` (built once, then cached by FastAPI)."""
    from fastapi.openapi.utils import get_openapi

    engine = app.state.engine
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    components["schemas"] = dict(SCHEMAS)
    params = _parameter_schemas(engine, sorted(app.state.all_labels))
    for (method, path), (ok, codes) in OPERATIONS.items():
        op = doc["paths"][path][method]
        op["responses"] = {"200": ok, **_errors(*codes)}
        if 416 in codes:   # a sound file is also served in the byte ranges a player asks for
            op["responses"]["206"] = {"description": "The byte ranges asked for (Range header) of the sound file",
                                      "content": {t: c for t, c in ok["content"].items() if t.startswith("audio/")}
                                      | {"multipart/byteranges": {"schema": {"type": "string", "format": "binary"}}}}
        for p in op.get("parameters", []):
            if p["name"] in params:
                p["schema"] = params[p["name"]]
            if p["in"] == "path" and p["name"] == "name":
                p["schema"] = {"type": "string", "enum": ["map", "gallery", "curves"]}
    doc["paths"]["/api/search"]["post"]["requestBody"] = _search_body(params, engine.raw_modalities)
    return doc


def _parameter_schemas(engine, labels: list) -> dict:
    names = {"type": "string", "enum": ["", *engine.indexes],
             "description": "an index of this server ('' or absent: the first)"}
    label = ({"type": "string", "enum": ["", *labels]} if len(labels) <= MAX_LISTED_LABELS
             else {"type": "string"})
    label["description"] = ("keep only items with this label ('' or absent: all); a label only another index "
                            "has finds nothing")
    return {
        "k": {"type": "integer", "minimum": 1, "maximum": engine.max_k, "default": 10,
              "description": f"number of results (1 .. {engine.max_k})"},
        "modality": names, "target": {**names, "description": "the results' index (default: the item's)"},
        "label": label,
        "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT,
                 "not": {"pattern": "^[^" + visible_pattern()[1:-1] + "]*$"},   # not only invisible characters
                 "description": f"the query text: at most {MAX_TEXT:,} characters, at least one visible"},
        "id": {"type": "integer", "description": "an item id (digits only; ids start at 0)"},
    }


FILE_TYPES = {"image": ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff"),
              "audio": ("audio/wav", "audio/flac", "audio/ogg", "audio/aiff", "audio/mpeg")}


def _search_body(params: dict, raw_modalities) -> dict:
    shared = {"k": params["k"], "label": {"anyOf": [params["label"], {"type": "null"}]},
              "modality": {"anyOf": [params["modality"], {"type": "null"}]}}
    text_query = {"type": "object", "required": ["text"], "additionalProperties": False,
                  "properties": {"text": params["text"], **shared,
                                 "target": {"type": "null", "description": "only with 'item'"}}}
    item_query = {"type": "object", "required": ["item"], "additionalProperties": False,
                  "properties": {"item": {"type": "integer"}, **shared,
                                 "target": {"anyOf": [params["target"], {"type": "null"}]}}}
    upload = {"type": "object", "required": ["file"], "additionalProperties": False, "properties": {
        "file": {"type": "string", "format": "binary", "minLength": 1,
                 "description": "a PNG, JPEG, GIF, WebP, BMP or TIFF image, or a WAV, FLAC, OGG, AIFF or MP3 sound"},
        "k": params["k"], "label": params["label"], "modality": params["modality"]}}
    return {"required": True, "content": {
        "multipart/form-data": {"schema": upload, "encoding": {"file": {"contentType": ", ".join(
            t for m in raw_modalities for t in FILE_TYPES.get(m, ()))}}},
        "application/json": {"schema": {"oneOf": [text_query, item_query]}}}}
