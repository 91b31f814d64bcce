"""Reading request values at the HTTP edge: ``k``, item ids, strings, and how values are shown in messages.

Every message names the field, what was expected and a *short* description of what was given:
a long string is cut (:func:`shown`), a number of thousands of digits is named by its length,
and a JSON object or array by its kind, never by a Python repr.
"""

from __future__ import annotations

import functools
import json
import re

from ..errors import InputError

#: characters of a client-given string shown in a message before it is cut
SHOWN_CHARS = 60
#: digits an integer may have before it is named by its length only (int64 has at most 19)
MAX_DIGITS = 19
#: characters of a query text
MAX_TEXT = 2000


class HugeInt:
    """A JSON integer literal too long to be an id or a count (kept as its text, never converted)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"a {len(self.text.lstrip('-')):,}-digit number"


def _parse_int(text: str):
    return int(text) if len(text.lstrip("-")) <= MAX_DIGITS else HugeInt(text)


def _unique_keys(pairs: list) -> dict:
    """A JSON object's members as a dict; a name given twice is refused (the last one would
    silently win), as a query parameter or a form field given twice is."""
    out = dict(pairs)
    if len(out) < len(pairs):
        seen: set = set()
        twice = next(name for name, _ in pairs if name in seen or seen.add(name))
        label = twice if twice.isidentifier() else shown(twice)
        count = sum(name == twice for name, _ in pairs)
        raise InputError(f"{label}: given {count} times in a JSON object; expected once")
    return out


def loads(raw: bytes):
    """Parse a JSON request body; integers over :data:`MAX_DIGITS` digits become :class:`HugeInt`.

    Raises
    ------
    InputError
        For bytes that are not JSON (the message says why, without echoing the body), and for
        an object that names a member twice.
    """
    try:
        return json.loads(raw, parse_int=_parse_int, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise InputError("request body is not valid JSON (nested too deeply)") from None
    except InputError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"request body is not valid JSON ({_short(str(exc), 200)})") from None


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def shown(value) -> str:
    """A short, safe description of a client-given value for an error message."""
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and len(value) > MAX_DIGITS:
            return f"a {len(value):,}-digit number"
        text = repr(value[:SHOWN_CHARS])
        return text + f"… ({len(value):,} characters)" if len(value) > SHOWN_CHARS else text
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, HugeInt):
        return repr(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else f"an integer of {value.bit_length():,} bits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, (list, tuple)):
        return "a JSON array"
    return f"a value of type {type(value).__name__}"


def parse_k(value, max_k: int) -> int:
    """``k`` from a query string, a form field (digits) or a JSON integer, from 1 to ``max_k``."""
    if isinstance(value, str):
        ok = value.isascii() and value.isdigit() and len(value) <= MAX_DIGITS   # not "1_0", "+1", " 1"
        number = int(value) if ok else None
    else:
        number = _integral(value)
    if number is None or not 1 <= number <= max_k:
        raise InputError(f"k: expected an integer from 1 to {max_k}, got {shown(value)}")
    return number


def _integral(value):
    """A JSON number that JSON Schema calls an integer (``5`` or ``5.0``) as int, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


_ID = re.compile(r"-?[0-9]+")


def parse_item_id(value, name: str = "id") -> int | None:
    """An item id from a path segment (digits, optionally a minus) or a JSON integer.

    Returns None for an integer that can be no item (negative or over int64), so the caller
    answers 404; raises :class:`InputError` for anything that is not an integer written plainly
    (``+12``, ``12.0``, `` 12``, ``0x0c`` are refused, not read as 12).
    """
    if isinstance(value, HugeInt):
        return None
    if isinstance(value, str):
        if not _ID.fullmatch(value):
            raise InputError(f"{name}: expected an item id (an integer written with digits only), got {shown(value)}")
        if len(value.lstrip("-")) > MAX_DIGITS:
            return None
        value = int(value)
    elif _integral(value) is None:
        raise InputError(f"{name}: expected an integer item id, got {shown(value)}")
    value = _integral(value)
    return value if 0 <= value < 2 ** 63 else None


def check_unicode(value: str, name: str) -> str:
    """Refuse strings that cannot be UTF-8 (a lone UTF-16 surrogate such as ``"\\ud800"`` in JSON)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{name}: expected Unicode text, got a lone surrogate "
                         f"{value[exc.start]!r} at character {exc.start}") from None
    return value


def optional_string(body: dict, name: str):
    """An optional string field of a JSON body (None when absent or null)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{name}: expected a string, got {shown(value)}")
    return check_unicode(value, name)


def choice(value, name: str, options, what: str):
    """``value`` when it is one of ``options``; ``""`` or None mean "not given" (None)."""
    if value is None or value == "":
        return None
    if value not in options:
        listed = ", ".join(map(repr, list(options)[:20])) + (", …" if len(options) > 20 else "")
        raise InputError(f"{name}: expected {what} ({listed}) or nothing, got {shown(value)}")
    return value


@functools.lru_cache(maxsize=1)
def visible_pattern() -> str:
    """A regular expression (one character class) matching exactly the characters that
    :func:`jointspace.towers.inputs.has_visible_text` counts as visible, for the API description."""
    ranges, start = [], None
    for code in range(0x110000 + 1):
        ch = chr(code) if code < 0x110000 else ""
        ok = bool(ch) and ch.isprintable() and not ch.isspace()
        if ok and start is None:
            start = code
        elif not ok and start is not None:
            ranges.append((start, code - 1))
            start = None

    def lit(code: int) -> str:
        ch = chr(code)
        return "\\" + ch if ch in "\\]^-[" else ch

    return "[" + "".join(lit(a) if a == b else f"{lit(a)}-{lit(b)}" for a, b in ranges) + "]"
