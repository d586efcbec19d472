"""PostHog's pure rules around persons and event properties (REFERENCE.md 2.3, 2.5, 3.4, 3.5).

Where PostHog leans on JavaScript (`String(x)`, truthiness, `localeCompare`), the JavaScript
result is reproduced, because ids and `elements_chain` strings must match what PostHog produced.
"""

from __future__ import annotations

from typing import Any

from plugin_server.ingestion.js import js_string, js_truthy

_ILLEGAL_ANY_CASE = ("anonymous", "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email",
                     "undefined", "true", "false")  # fmt: skip
_ILLEGAL_EXACT = ("[object Object]", "NaN", "None", "none", "null", "0", "undefined")


def _with_quotes(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(variant for n in names for variant in (n, f"'{n}'", f'"{n}"'))


_ILLEGAL_LOWER = _with_quotes(_ILLEGAL_ANY_CASE)
_ILLEGAL = _with_quotes(_ILLEGAL_EXACT)
# What JavaScript's String.prototype.trim removes; Python's strip() differs (\x1c-\x1f, \ufeff).
_JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)

_CAMPAIGN_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_name", "utm_term", "gclid",
                  "fbclid", "msclkid")  # fmt: skip
_INITIAL_AND_LAST_KEYS = ("$app_build", "$app_name", "$app_namespace", "$app_version", "$browser",
                          "$browser_version", "$device_type", "$current_url", "$pathname", "$os",
                          "$referring_domain", "$referrer")  # fmt: skip
_NO_PERSON_PROPERTIES_EVENTS = frozenset({"$snapshot", "$performance_event"})
# (event property, person property it feeds), in PostHog's order; names built once, not per event.
_SET_NAMES = (
    *((k, k) for k in _CAMPAIGN_KEYS),
    *((k, "$last_" + k.replace("$", "", 1)) for k in _INITIAL_AND_LAST_KEYS),
)
_SET_ONCE_NAMES = tuple((k, "$initial_" + k.replace("$", "", 1)) for k in (*_CAMPAIGN_KEYS, *_INITIAL_AND_LAST_KEYS))
_INITIAL_SOURCES = frozenset(k for k, _ in _SET_ONCE_NAMES)

MAX_ELEMENT_TEXT = 400
MAX_ELEMENT_HREF = 2048


def is_illegal_distinct_id(value: str) -> bool:
    return not value.strip(_JS_WHITESPACE) or value.lower() in _ILLEGAL_LOWER or value in _ILLEGAL


def merge_ids(event: str, distinct_id: str, properties: dict[str, Any]) -> tuple[str, str] | None:
    """`(other_id, into_id)` when the event merges two distinct ids, else None."""
    if event == "$identify" and "$anon_distinct_id" in properties:
        return js_string(properties["$anon_distinct_id"]), distinct_id
    if event in ("$create_alias", "$merge_dangerously") and js_truthy(properties.get("alias")):
        return js_string(properties["alias"]), distinct_id
    return None


def initial_and_last_properties(event: str, properties: dict[str, Any]) -> dict[str, Any]:
    """Add `$initial_*` to `$set_once`, and `$last_*` and campaign keys to `$set`.

    Generated keys win over keys the event already had, as in PostHog. Returns `properties`
    itself when there is nothing to add; never mutates it.
    """
    if event in _NO_PERSON_PROPERTIES_EVENTS:
        return properties
    present = _INITIAL_SOURCES.intersection(properties)
    if not present:
        return properties
    to_set = {name: properties[key] for key, name in _SET_NAMES if key in present}
    to_set_once = {name: properties[key] for key, name in _SET_ONCE_NAMES if key in present}
    return {**properties, "$set": {**_object(properties.get("$set")), **to_set},
            "$set_once": {**_object(properties.get("$set_once")), **to_set_once}}  # fmt: skip


def extract_elements_chain(properties: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Remove `$elements_chain` and `$elements`; return the rest and the chain for the event row."""
    if "$elements_chain" not in properties and "$elements" not in properties:
        return properties, ""
    chain = properties.get("$elements_chain")
    elements = properties.get("$elements")
    rest = {k: v for k, v in properties.items() if k not in ("$elements_chain", "$elements")}
    if isinstance(chain, str) and chain:
        return rest, chain
    if isinstance(elements, list) and elements:
        return rest, elements_to_chain(elements)
    return rest, ""


def elements_to_chain(elements: list[Any]) -> str:
    """PostHog's `elementsToString` over elements in either form: as posthog-js sends them in
    `$elements` (`$el_text`, `attr__*`) or already converted (`text`, `attributes`, ...)."""
    return ";".join(_element_string(_converted(el)) for el in elements if isinstance(el, dict))


def _converted(el: dict[str, Any]) -> dict[str, Any]:
    if "attributes" in el or ("$el_text" not in el and not any(k.startswith("attr__") for k in el)):
        return el
    text, href, classes = el.get("$el_text"), el.get("attr__href"), el.get("attr__class")
    return {
        "text": text[:MAX_ELEMENT_TEXT] if isinstance(text, str) else text,
        "tag_name": el.get("tag_name"),
        "href": href[:MAX_ELEMENT_HREF] if isinstance(href, str) else href,
        "attr_class": classes if isinstance(classes, list) or not classes else js_string(classes).split(" "),
        "attr_id": el.get("attr__id"),
        "nth_child": el.get("nth_child"),
        "nth_of_type": el.get("nth_of_type"),
        "attributes": {k: v for k, v in el.items() if k.startswith("attr__")},
    }


def _element_string(el: dict[str, Any]) -> str:
    out = js_string(el["tag_name"]) if js_truthy(el.get("tag_name")) else ""
    classes = el.get("attr_class")
    if isinstance(classes, str):
        classes = classes.split(" ")
    if isinstance(classes, list):
        names = sorted((js_string(c) for c in classes), key=_utf16_order)
        out += "".join("." + name.replace('"', "") for name in names)
    attributes = {
        **({"text": el["text"]} if js_truthy(el.get("text")) else {}),
        "nth-child": _default_zero(el.get("nth_child")),
        "nth-of-type": _default_zero(el.get("nth_of_type")),
        **({"href": el["href"]} if js_truthy(el.get("href")) else {}),
        **({"attr_id": el["attr_id"]} if js_truthy(el.get("attr_id")) else {}),
        **_object(el.get("attributes")),
    }
    pairs = (f'{_escape(k)}="{_escape(js_string(attributes[k]))}"' for k in sorted(attributes, key=_js_entry_order))
    return f"{out}:{''.join(pairs)}"


def _default_zero(value: Any) -> Any:
    return 0 if value is None else value  # JavaScript `??`: only null/undefined


def _escape(text: str) -> str:
    return text.replace('"', '\\"')


def _utf16_order(text: str) -> bytes:
    # Array.prototype.sort compares UTF-16 code units, not code points.
    return text.encode("utf-16-be", "surrogatepass")


# ICU's root collation (what `localeCompare` uses) for ASCII: whitespace, punctuation and symbols
# in this order, then digits, then letters with lower case before upper case. Other characters
# follow by code point, an approximation that only matters for non-ASCII attribute names.
_COLLATION = "\t\n\v\f\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz"
_PRIMARY = {c: i for i, c in enumerate(_COLLATION)}


def _locale_order(text: str) -> tuple[Any, ...]:
    primary = tuple(_PRIMARY.get(c.lower(), len(_COLLATION) + ord(c.lower()[0])) for c in text)
    return primary, tuple(c.isupper() for c in text), text


def _js_entry_order(key: str) -> tuple[Any, ...]:
    # Object.entries lists array-index keys ("0", "17") first, ascending, whatever the insertion.
    if key.isdecimal() and key.isascii() and (key == "0" or key[0] != "0") and int(key) < 2**32 - 1:
        return (0, int(key))
    return (1, _locale_order(key))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def strip_nul(value: Any) -> Any:
    """`value` with NUL removed from every string and key; unchanged parts are returned as-is.

    Postgres rejects NUL in text and jsonb.
    """
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, list):
        return _strip_list(value)
    if isinstance(value, dict):
        return _strip_dict(value)
    return value


def _strip_list(items: list[Any]) -> list[Any]:
    out: list[Any] | None = None
    for i, item in enumerate(items):
        new = strip_nul(item)
        if out is None and new is not item:
            out = items[:i]
        if out is not None:
            out.append(new)
    return items if out is None else out


def _strip_dict(mapping: dict[Any, Any]) -> dict[Any, Any]:
    out: dict[Any, Any] | None = None
    for i, (key, item) in enumerate(mapping.items()):
        new_key, new = strip_nul(key), strip_nul(item)
        if out is None and (new_key is not key or new is not item):
            out = dict(list(mapping.items())[:i])
        if out is not None:
            out[new_key] = new
    return mapping if out is None else out
