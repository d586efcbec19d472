import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_server.ingestion.person_rules import (
    elements_to_chain,
    extract_elements_chain,
    initial_and_last_properties,
    is_illegal_distinct_id,
    js_string,
    js_truthy,
    merge_ids,
    strip_nul,
)

# --- illegal distinct ids (REFERENCE.md 3.5) ---


@pytest.mark.parametrize(
    ("value", "illegal"),
    [
        # the examples given
        ("Anonymous", True), ("'guest'", True), ('"null"', True), ("nan", False), ("NaN", True),
        ("  ", True), ("0", True), ("00", False), ("NULL", False),
        # every entry, any case where allowed, bare and quoted
        ("anonymous", True), ("GUEST", True), ("distinctid", True), ("Distinct_Id", True), ("id", True),
        ("ID", True), ("not_authenticated", True), ("EMAIL", True), ("undefined", True), ("Undefined", True),
        ("true", True), ("FALSE", True), ("'TRUE'", True), ('"Email"', True),
        ("[object Object]", True), ("[object object]", False), ("'[object Object]'", True),
        ("None", True), ("none", True), ("NONE", False), ("null", True), ("Null", False),
        ('"0"', True), ("'NaN'", True), ("'nan'", False), ('"undefined"', True),
        # whitespace as JavaScript's trim() sees it
        ("", True), ("\t\n", True), ("\u00a0\ufeff", True), ("\x1c", False),
        # legal ids
        ("user@example.com", False), ("anonymous1", False), ("'guest", False), ("`null`", False),
        (" id ", False), ("1", False),
    ],
)  # fmt: skip
def test_is_illegal_distinct_id(value, illegal):
    assert is_illegal_distinct_id(value) is illegal


# --- merge ids (REFERENCE.md 3.4) ---


@pytest.mark.parametrize(
    ("event", "properties", "expected"),
    [
        ("$identify", {"$anon_distinct_id": "anon"}, ("anon", "me")),
        ("$identify", {"$anon_distinct_id": 1}, ("1", "me")),
        ("$identify", {"$anon_distinct_id": 1.5}, ("1.5", "me")),
        ("$identify", {"$anon_distinct_id": 1.0}, ("1", "me")),
        ("$identify", {"$anon_distinct_id": True}, ("true", "me")),
        ("$identify", {"$anon_distinct_id": None}, ("null", "me")),
        ("$identify", {"$anon_distinct_id": ""}, ("", "me")),
        ("$identify", {}, None),
        ("$identify", {"alias": "a"}, None),
        ("$create_alias", {"alias": "old"}, ("old", "me")),
        ("$create_alias", {"alias": 7}, ("7", "me")),
        ("$create_alias", {"alias": [1, None, "x"]}, ("1,,x", "me")),
        ("$create_alias", {"alias": {}}, ("[object Object]", "me")),
        ("$create_alias", {"alias": ""}, None),
        ("$create_alias", {"alias": 0}, None),
        ("$create_alias", {"alias": None}, None),
        ("$create_alias", {"alias": False}, None),
        ("$create_alias", {"alias": math.nan}, None),
        ("$create_alias", {}, None),
        ("$merge_dangerously", {"alias": "old"}, ("old", "me")),
        ("$merge_dangerously", {"alias": ""}, None),
        ("$pageview", {"alias": "old", "$anon_distinct_id": "anon"}, None),
        ("$identify_", {"$anon_distinct_id": "anon"}, None),
    ],
)
def test_merge_ids(event, properties, expected):
    assert merge_ids(event, "me", properties) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("s", "s"), (None, "null"), (True, "true"), (False, "false"), (0, "0"), (-0.0, "0"), (-3, "-3"),
        (1.0, "1"), (1.5, "1.5"), (0.1, "0.1"), (-2.5e-3, "-0.0025"), (1e-6, "0.000001"), (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"), (1e20, "100000000000000000000"), (1e21, "1e+21"), (1.25e22, "1.25e+22"),
        (123456789012.5, "123456789012.5"), (2**53, "9007199254740992"), (2**64, "18446744073709552000"),
        (10**400, "Infinity"), (-(10**400), "-Infinity"), (math.inf, "Infinity"), (math.nan, "NaN"),
        ([], ""), ([1, [2, 3]], "1,2,3"), ({"a": 1}, "[object Object]"),
    ],
)  # fmt: skip
def test_js_string(value, text):
    assert js_string(value) == text


@pytest.mark.parametrize(
    ("value", "truthy"),
    [("", False), ("0", True), (0, False), (0.0, False), (math.nan, False), (None, False), (False, False),
     ([], True), ({}, True), (-1, True)],
)  # fmt: skip
def test_js_truthy(value, truthy):
    assert js_truthy(value) is truthy


# --- initial and last properties (REFERENCE.md 2.5) ---


def test_initial_and_last_properties_example():
    properties = {"utm_source": "google", "$browser": "Chrome"}
    out = initial_and_last_properties("$pageview", properties)
    assert out == {
        "utm_source": "google",
        "$browser": "Chrome",
        "$set": {"$last_browser": "Chrome", "utm_source": "google"},
        "$set_once": {"$initial_utm_source": "google", "$initial_browser": "Chrome"},
    }
    assert properties == {"utm_source": "google", "$browser": "Chrome"}


def test_every_key():
    campaign = ["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_name", "utm_term", "gclid", "fbclid",
                "msclkid"]  # fmt: skip
    initial = ["$app_build", "$app_name", "$app_namespace", "$app_version", "$browser", "$browser_version",
               "$device_type", "$current_url", "$pathname", "$os", "$referring_domain", "$referrer"]  # fmt: skip
    out = initial_and_last_properties("e", {k: k for k in campaign + initial})
    assert out["$set"] == {**{k: k for k in campaign}, **{f"$last_{k[1:]}": k for k in initial}}
    assert out["$set_once"] == {f"$initial_{k.removeprefix('$')}": k for k in campaign + initial}


def test_only_the_first_dollar_is_stripped():
    out = initial_and_last_properties("e", {"$referring_domain": "$x.com"})
    assert out["$set_once"] == {"$initial_referring_domain": "$x.com"}
    assert out["$set"] == {"$last_referring_domain": "$x.com"}


def test_generated_keys_override_existing_ones():
    properties = {
        "$browser": "Chrome",
        "utm_source": None,
        "$set": {"utm_source": "mine", "$last_browser": "mine", "kept": 1},
        "$set_once": {"$initial_browser": "mine", "$initial_utm_source": "mine", "kept_once": 2},
    }
    out = initial_and_last_properties("e", properties)
    assert out["$set"] == {"utm_source": None, "$last_browser": "Chrome", "kept": 1}
    assert out["$set_once"] == {"$initial_browser": "Chrome", "$initial_utm_source": None, "kept_once": 2}
    assert properties["$set"] == {"utm_source": "mine", "$last_browser": "mine", "kept": 1}


@pytest.mark.parametrize("event", ["$snapshot", "$performance_event"])
def test_skipped_events(event):
    properties = {"utm_source": "google", "$browser": "Chrome"}
    assert initial_and_last_properties(event, properties) is properties


def test_nothing_to_add_returns_the_same_properties():
    properties = {"$set": {"a": 1}, "$initial_browser": "x", "$last_browser": "y", "browser": "z"}
    assert initial_and_last_properties("e", properties) is properties


def test_non_object_set_is_replaced():
    out = initial_and_last_properties("e", {"$os": "Mac", "$set": "bad", "$set_once": None})
    assert out["$set"] == {"$last_os": "Mac"}
    assert out["$set_once"] == {"$initial_os": "Mac"}


# --- elements (REFERENCE.md 2.3) ---

POSTHOG_EXAMPLE = [
    {
        "tag_name": "a",
        "href": "/a-url",
        "attr_class": ["small"],
        "text": "bla bla",
        "attributes": {
            "prop": "value",
            "number": 33,
            "data-attr": 'something " that; could mess up',
            "style": "min-height: 100vh;",
        },
        "nth_child": 1,
        "nth_of_type": 0,
    },
    {"tag_name": "button", "attr_class": ["btn", "btn-primary"], "nth_child": 0, "nth_of_type": 0},
    {"tag_name": "div", "nth_child": 0, "nth_of_type": 0},
    {"tag_name": "div", "nth_child": 0, "nth_of_type": 0, "attr_id": "nested"},
]
POSTHOG_CHAIN = (
    'a.small:data-attr="something \\" that; could mess up"href="/a-url"nth-child="1"nth-of-type="0"number="33"'
    'prop="value"style="min-height: 100vh;"text="bla bla";button.btn.btn-primary:nth-child="0"nth-of-type="0";'
    'div:nth-child="0"nth-of-type="0";div:attr_id="nested"nth-child="0"nth-of-type="0"'
)


def test_posthog_example():
    assert elements_to_chain(POSTHOG_EXAMPLE) == POSTHOG_CHAIN


@pytest.mark.parametrize(
    ("element", "chain"),
    [
        (
            {"tag_name": "a", "$el_text": "Sign up", "attr__href": "/signup", "attr__class": "btn primary",
             "attr__id": "cta", "nth_child": 1, "nth_of_type": 2},
            (
                'a.btn.primary:attr__class="btn primary"attr__href="/signup"attr__id="cta"attr_id="cta"href="/signup"'
                'nth-child="1"nth-of-type="2"text="Sign up"'
            ),
        ),
        ({"tag_name": "span", "$el_text": ""}, 'span:nth-child="0"nth-of-type="0"'),
        ({"tag_name": "i", "attr__class": ["z", "a"]}, 'i.a.z:attr__class="z,a"nth-child="0"nth-of-type="0"'),
        ({"tag_name": "b", "attr__class": "x  y"}, 'b..x.y:attr__class="x  y"nth-child="0"nth-of-type="0"'),
        ({"tag_name": "b", "attr__data-q": 'say "hi"'}, 'b:attr__data-q="say \\"hi\\""nth-child="0"nth-of-type="0"'),
        ({"attr__x": None, "attr__y": True}, ':attr__x="null"attr__y="true"nth-child="0"nth-of-type="0"'),
    ],
    ids=["raw-link", "raw-empty-text", "raw-class-list", "raw-class-double-space", "raw-quotes", "raw-no-tag"],
)  # fmt: skip
def test_raw_elements(element, chain):
    assert elements_to_chain([element]) == chain


def test_raw_text_and_href_are_truncated():
    chain = elements_to_chain([{"tag_name": "a", "$el_text": "t" * 500, "attr__href": "h" * 3000}])
    assert f'href="{"h" * 2048}"' in chain
    assert f'text="{"t" * 400}"' in chain
    assert f'attr__href="{"h" * 3000}"' in chain  # the attribute itself is kept whole, as in PostHog


@pytest.mark.parametrize(
    ("element", "chain"),
    [
        ({"tag_name": "p", "nth_child": None, "nth_of_type": ""}, 'p:nth-child="0"nth-of-type=""'),
        ({"tag_name": "p", "attr_class": ['q"uote', "B", "a", "é", "\U0001f600", "\uff5e"]},
         'p.B.a.quote.é.😀.～:nth-child="0"nth-of-type="0"'),
        ({"tag_name": "p", "attributes": {"Zeta": 1, "alpha": 2, "beta": 3, "_u": 4, "10": 5, "2": 6, "07": 7}},
         'p:2="6"10="5"_u="4"07="7"alpha="2"beta="3"nth-child="0"nth-of-type="0"Zeta="1"'),
        ({"tag_name": "p", "attributes": {"nth-child": 9, "text": "over"}, "text": "under"},
         'p:nth-child="9"nth-of-type="0"text="over"'),
        ({"tag_name": "p", "attributes": {"b": 1.0, "a": [1, 2]}}, 'p:a="1,2"b="1"nth-child="0"nth-of-type="0"'),
        ({"tag_name": "", "text": 0, "href": "", "attr_id": None}, ':nth-child="0"nth-of-type="0"'),
        ({"tag_name": "p", "attr_class": "one two"}, 'p.one.two:nth-child="0"nth-of-type="0"'),
    ],
    ids=["nullish-defaults", "class-order", "key-order", "attributes-win", "values-as-js", "falsy-skipped",
         "class-string"],
)  # fmt: skip
def test_converted_elements(element, chain):
    assert elements_to_chain([element]) == chain


def test_non_object_elements_are_skipped():
    assert elements_to_chain([None, "x", {"tag_name": "a"}]) == 'a:nth-child="0"nth-of-type="0"'
    assert elements_to_chain([]) == ""


@pytest.mark.parametrize(
    ("properties", "rest", "chain"),
    [
        ({"a": 1}, {"a": 1}, ""),
        ({"a": 1, "$elements_chain": "div:", "$elements": [{"tag_name": "a"}]}, {"a": 1}, "div:"),
        ({"$elements_chain": "", "$elements": [{"tag_name": "a"}]}, {}, 'a:nth-child="0"nth-of-type="0"'),
        ({"$elements_chain": 5, "$elements": [{"tag_name": "a"}]}, {}, 'a:nth-child="0"nth-of-type="0"'),
        ({"$elements": POSTHOG_EXAMPLE}, {}, POSTHOG_CHAIN),
        ({"$elements": []}, {}, ""),
        ({"$elements": {"tag_name": "a"}}, {}, ""),
        ({"$elements": "a"}, {}, ""),
        ({"$elements_chain": None}, {}, ""),
    ],
    ids=["none", "chain-wins", "empty-chain", "non-string-chain", "elements", "empty-elements", "object-elements",
         "string-elements", "null-chain"],
)  # fmt: skip
def test_extract_elements_chain(properties, rest, chain):
    before = dict(properties)
    assert extract_elements_chain(properties) == (rest, chain)
    assert properties == before


def test_extract_without_elements_returns_the_same_properties():
    properties = {"a": 1}
    assert extract_elements_chain(properties)[0] is properties


# --- NUL ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\x00b\x00", "ab"),
        (["x", "\x00y", 1], ["x", "y", 1]),
        ({"k\x00": "v\x00", "n": [None, {"\x00": "\x00"}]}, {"k": "v", "n": [None, {"": ""}]}),
        ({"a": 1, "b": "\x00"}, {"a": 1, "b": ""}),
        (3, 3),
        (None, None),
    ],
)
def test_strip_nul(value, expected):
    assert strip_nul(value) == expected


def test_strip_nul_keeps_unchanged_objects():
    inner = {"x": [1, "two"]}
    value = {"a": inner, "b": ["c", inner], "c\x00": 1}
    out = strip_nul(value)
    assert out == {"a": inner, "b": ["c", inner], "c": 1}
    assert out["a"] is inner
    assert out["b"] is value["b"]
    clean = {"a": [1, {"b": "c"}]}
    assert strip_nul(clean) is clean


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="ab\x00"),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(alphabet="ab\x00"), children, max_size=3),
    max_leaves=12,
)


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(map(_has_nul, value))
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


@settings(max_examples=300, deadline=None)
@given(value=JSON)
def test_strip_nul_removes_every_nul(value):
    out = strip_nul(value)
    assert not _has_nul(out)
    assert (out is value) is not _has_nul(value)
