"""The sandbox for legitimate plugins: what works, capabilities, isolation, logs and limits."""

from __future__ import annotations

import time
from typing import Any

import pytest

from vm.errors import (
    PluginResourceError,
    PluginRuntimeError,
    PluginTimeout,
    PolicyViolation,
)
from vm.sandbox import (
    Limits,
    PluginInstance,
    compile_plugin,
    export_value,
    plugin_builtins,
)

DEFAULT = Limits()
EVENT = {
    "event": "pageview",
    "distinct_id": "u1",
    "properties": {"$current_url": "https://x.example/a?utm=1"},
}


def load(source: str, **files: str) -> PluginInstance:
    sources = {"main.py": source} | {f"{name}.py": text for name, text in files.items()}
    return compile_plugin(sources).instantiate(timeout=2, log=lambda kind, text: None)


def run(source: str, *args: Any, timeout: float = 2, limits: Limits = DEFAULT, **files: str) -> Any:
    instance = load(source, **files)
    fn = instance.exports["process_event"]
    return instance.call(
        fn,
        *(args or (dict(EVENT, properties=dict(EVENT["properties"])), None)),
        timeout=timeout,
        log=lambda k, t: None,
        limits=limits,
    )


LEGITIMATE = [
    (
        "add-property",
        "def process_event(e, m):\n    e['properties']['seen'] = True\n    return e\n",
        lambda r: r["properties"]["seen"] is True,
    ),
    ("drop", "def process_event(e, m):\n    return None\n", lambda r: r is None),
    (
        "json",
        "import json\ndef process_event(e, m):\n    return json.loads(json.dumps(e, sort_keys=True))\n",
        lambda r: r == EVENT,
    ),
    (
        "re",
        "import re\ndef process_event(e, m):\n    return re.findall(r'[a-z]+', 'ab 12 cd', re.I) + [re.sub(r'(\\d)', r'<\\1>', 'a1')]\n",
        lambda r: r == ["ab", "cd", "a<1>"],
    ),
    (
        "re-pattern",
        "import re\nP = re.compile(r'(?P<k>\\w+)=(\\d+)')\ndef process_event(e, m):\n    mm = P.search('x a=1')\n    return [mm.group('k'), mm[2], mm.span(), P.split('a=1;b=2')]\n",
        lambda r: r == ["a", "1", [2, 5], ["", "a", "1", ";", "b", "2", ""]],
    ),
    (
        "datetime",
        "from datetime import datetime, timezone, timedelta\ndef process_event(e, m):\n    d = datetime(2024, 1, 2, tzinfo=timezone.utc) + timedelta(days=1)\n    return d.isoformat() + d.strftime(' %Y')\n",
        lambda r: r == "2024-01-03T00:00:00+00:00 2024",
    ),
    (
        "hashlib-hmac",
        "import hashlib, hmac\ndef process_event(e, m):\n    return [hashlib.sha256(b'x').hexdigest()[:8], hmac.new(b'k', b'm', 'sha256').hexdigest()[:8]]\n",
        lambda r: r[0] == "2d711642",
    ),
    (
        "math",
        "import math\ndef process_event(e, m):\n    return [math.floor(2.5), math.sqrt(16), math.factorial(5), round(math.pi, 2)]\n",
        lambda r: r == [2, 4.0, 120, 3.14],
    ),
    (
        "collections",
        "from collections import Counter, defaultdict, OrderedDict, deque\ndef process_event(e, m):\n    c = Counter('abca')\n    d = defaultdict(list)\n    d['x'].append(1)\n    q = deque([1, 2], maxlen=2)\n    q.append(3)\n    return [c.most_common(1), dict(d), list(OrderedDict(a=1)), list(q), sorted(c.elements())]\n",
        lambda r: r == [[["a", 2]], {"x": [1]}, ["a"], [2, 3], ["a", "a", "b", "c"]],
    ),
    (
        "itertools-functools",
        "import itertools, functools\ndef process_event(e, m):\n    return [list(itertools.islice(itertools.count(), 3)), list(itertools.chain.from_iterable([[1], [2]])), functools.reduce(lambda a, b: a + b, [1, 2, 3]), sorted([3, 1, 2], key=functools.cmp_to_key(lambda a, b: b - a))]\n",
        lambda r: r == [[0, 1, 2], [1, 2], 6, [3, 2, 1]],
    ),
    (
        "classes",
        "class Counter:\n    def __init__(self):\n        self.n = 0\n    def add(self):\n        self.n = self.n + 1\n        return self\n    def __eq__(self, other):\n        return self.n == other\nclass Sub(Counter):\n    def add(self):\n        super().add()\n        return super().add()\ndef process_event(e, m):\n    return [Sub().add().n, Counter().add() == 1, isinstance(Sub(), Counter)]\n",
        lambda r: r == [2, True, True],
    ),
    (
        "closures-generators",
        "def make(k):\n    def f(x):\n        return x * k\n    return f\ndef gen(n):\n    for i in range(n):\n        yield i\ndef process_event(e, m):\n    return [make(3)(2), sum(gen(4)), list(x * x for x in gen(3)), {k: v for k, v in [('a', 1)]}]\n",
        lambda r: r == [6, 6, [0, 1, 4], {"a": 1}],
    ),
    (
        "try-except",
        "def process_event(e, m):\n    try:\n        return {}['x']\n    except KeyError as err:\n        return 'missing ' + str(err)\n    finally:\n        pass\n",
        lambda r: r == "missing 'x'",
    ),
    (
        "fstrings-format",
        "def process_event(e, m):\n    x = 3.14159\n    return [f'{x:.2f}', f'{e[\"event\"]!r:>12}', format(7, '03d'), '%s-%03d' % ('a', 5), f'{[1, 2]}']\n",
        lambda r: r == ["3.14", "  'pageview'", "007", "a-005", "[1, 2]"],
    ),
    (
        "sort-key",
        "def process_event(e, m):\n    rows = [{'n': 2}, {'n': 1}]\n    return sorted(rows, key=lambda r: r['n'], reverse=True)\n",
        lambda r: r == [{"n": 2}, {"n": 1}],
    ),
    (
        "str-methods",
        "def process_event(e, m):\n    s = ' Hello World '\n    return [s.strip().upper(), s.split(), '-'.join(['a', 'b']), s.replace('o', '0'), s.startswith(' H'), 'a'.ljust(3, '.'), 'x'.zfill(3)]\n",
        lambda r: (
            r
            == [
                "HELLO WORLD",
                ["Hello", "World"],
                "a-b",
                " Hell0 W0rld ",
                True,
                "a..",
                "00x",
            ]
        ),
    ),
    (
        "dict-list-methods",
        "def process_event(e, m):\n    d = {'a': 1}\n    d.update(b=2)\n    d.setdefault('c', 3)\n    l = [3, 1]\n    l.extend([2])\n    l.sort()\n    l[0:1] = [0, 0]\n    a, *rest = l\n    l += [9]\n    return [sorted(d.items()), l, a, rest, d.get('z', 'none'), list(reversed(l)), dict(zip('ab', [1, 2]))]\n",
        lambda r: r[1] == [0, 0, 2, 3, 9] and r[4] == "none",
    ),
    (
        "helper-file",
        "from helpers import shout\nimport helpers\ndef process_event(e, m):\n    return shout('hi') + helpers.SUFFIX\n",
        lambda r: r == "HI!?",
    ),
    (
        "isinstance-guarded-types",
        "class D(dict):\n    pass\ndef process_event(e, m):\n    return [isinstance(e, dict), isinstance('x', (int, str)), issubclass(D, dict), dict.fromkeys('ab', 0), list(map(str.upper, ['a'])), int('7') + 1, list(range(3)), bytes('é', 'utf-8').hex()]\n",
        lambda r: r == [True, True, True, {"a": 0, "b": 0}, ["A"], 8, [0, 1, 2], "c3a9"],
    ),
    (
        "urllib-base64-uuid-random-decimal",
        "from urllib.parse import urlparse, parse_qs, quote\nimport base64, uuid, random, decimal\ndef process_event(e, m):\n    u = urlparse(e['properties']['$current_url'])\n    random.seed(1)\n    return [u.netloc, parse_qs(u.query), quote('a b'), base64.b64encode(b'x').decode(), len(str(uuid.uuid4())), 0 <= random.random() < 1, str(decimal.Decimal('1.10') + decimal.Decimal('2'))]\n",
        lambda r: r == ["x.example", {"utm": ["1"]}, "a%20b", "eA==", 36, True, "3.10"],
    ),
    (
        "bounded-numbers",
        "import math, decimal\nD = decimal.Decimal\nclass I(int):\n    pass\ndef process_event(e, m):\n    return [int('ff', 16), I('ff', 16) + 0, int.from_bytes(b'\\x01\\x00', 'big'), (0).from_bytes(b'\\x02', 'little'), pow(3, 5, 7), pow(2, -1, 7), math.gcd(12, 18), math.lcm(4, 6), math.floor(D('2.5')), math.ceil(D('2.5')), math.trunc(D('-2.5')), round(D('2.5')), str(round(D('2.567'), 2)), int(D('12.9')), format(D('1.5'), '.2f'), f'{D(\"0.125\"):%}', D('1.5').as_integer_ratio(), '%d' % D('7.9'), I(2) ** 10, I(3) * 4, 1 << I(3)]\n",
        lambda r: (
            r == [255, 255, 256, 2, 5, 4, 6, 12, 2, 3, -2, 2, "2.57", 12, "1.50", "12.5%", [3, 2], "7", 1024, 12, 8]
        ),
    ),
    (
        "decimal-powers",
        "import decimal\nD = decimal.Decimal\ndef process_event(e, m):\n    return [str(D('1.05') ** 12), str(D(2) ** D('0.5')), str(pow(D('1.5'), 2)), str(2 ** D('0.5')), 2.0 ** 0.5]\n",
        lambda r: (
            r
            == [
                "1.795856326022129150390625",
                "1.414213562373095048801688724",
                "2.25",
                "1.414213562373095048801688724",
                2.0**0.5,
            ]
        ),
    ),
    (
        "lazy-iterators-and-codecs",
        "import urllib.parse\nclass D(dict):\n    pass\nclass S(str):\n    pass\nclass B(bytes):\n    pass\ndef process_event(e, m):\n    x = [1, -2]\n    for _ in range(20):\n        x = map(abs, x)\n    return [list(x), list(zip('ab', [1, 2], strict=True)), list(enumerate('ab', start=1)), list(filter(None, [0, 1])), sorted(D.fromkeys('ba', 1)), 'é'.encode('latin-1').hex(), b'\\xe9'.decode('cp1252'), 'x'.encode('shift_jis').hex(), str(b'\\xc3\\xa9', 'utf-8'), S(b'ab', 'ascii') + '', B('é', 'utf-16-le').hex(), urllib.parse.quote('é', encoding='latin-1'), urllib.parse.unquote('%E9', 'latin-1'), urllib.parse.parse_qs('a=%E9', encoding='latin-1')]\n",
        lambda r: (
            r
            == [
                [1, 2],
                [["a", 1], ["b", 2]],
                [[1, "a"], [2, "b"]],
                [1],
                ["a", "b"],
                "e9",
                "é",
                "78",
                "é",
                "ab",
                "e900",
                "%E9",
                "é",
                {"a": ["é"]},
            ]
        ),
    ),
    (
        "tuples-become-lists",
        "def process_event(e, m):\n    return {'t': (1, (2, 3))}\n",
        lambda r: r == {"t": [1, [2, 3]]},
    ),
]


@pytest.mark.parametrize(
    ("source", "check"),
    [(s, c) for _, s, c in LEGITIMATE],
    ids=[n for n, _, _ in LEGITIMATE],
)
def test_legitimate_plugins_work(source: str, check: Any) -> None:
    helpers = "SUFFIX = '?'\ndef shout(x):\n    return x.upper() + '!'\n"
    result = run(source, helpers=helpers)
    assert check(result), result


def test_returned_event_is_a_copy() -> None:
    instance = load(
        "KEPT = {}\ndef process_event(e, m):\n    KEPT['e'] = e\n    return e\ndef on_event(e, m):\n    KEPT['e']['late'] = 1\n"
    )
    out = instance.call(
        instance.exports["process_event"],
        {"a": {}},
        None,
        timeout=1,
        log=lambda k, t: None,
    )
    instance.call(instance.exports["on_event"], {}, None, timeout=1, log=lambda k, t: None)
    assert out == {"a": {}}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "def process_event(e, m):\n    return e\n",
            {"methods": ["process_event"], "scheduled_tasks": [], "jobs": []},
        ),
        (
            (
                "def setup_plugin(m):\n    pass\ndef export_events(es, m):\n    pass\n"
                "def run_every_hour(m):\n    pass\ndef job_a(p, m):\n    pass\njobs = {'a': job_a}\n"
            ),
            {
                "methods": ["setup_plugin", "export_events", "on_event"],
                "scheduled_tasks": ["run_every_hour"],
                "jobs": ["a", "export_events_with_retry"],
            },
        ),
        ("X = 1\n", {"methods": [], "scheduled_tasks": [], "jobs": []}),
    ],
    ids=["process-event", "everything", "nothing"],
)
def test_capabilities(source: str, expected: dict[str, list[str]]) -> None:
    assert load(source).capabilities() == expected


@pytest.mark.parametrize(
    "source",
    [
        "process_event = 1\n",
        "jobs = [1]\n",
        "import json\nprocess_event = json.dumps\n",
        "jobs = {'a': len}\n",
    ],
    ids=["not-callable", "jobs-not-dict", "host-function", "job-builtin"],
)
def test_exports_must_be_plugin_functions(source: str) -> None:
    with pytest.raises(PluginRuntimeError):
        load(source)


def test_call_refuses_foreign_functions() -> None:
    instance = load("def process_event(e, m):\n    return e\n")
    with pytest.raises(ValueError):
        instance.call(len, [], timeout=1, log=lambda k, t: None)


def test_instances_have_their_own_globals() -> None:
    source = "SEEN = []\ndef process_event(e, m):\n    SEEN.append(e['n'])\n    return len(SEEN)\n"
    compiled = compile_plugin({"main.py": source})
    one, two = (compiled.instantiate(timeout=1, log=lambda k, t: None) for _ in range(2))
    calls = [
        one.call(
            one.exports["process_event"],
            {"n": i},
            None,
            timeout=1,
            log=lambda k, t: None,
        )
        for i in range(3)
    ]
    assert calls == [1, 2, 3]
    assert (
        two.call(
            two.exports["process_event"],
            {"n": 0},
            None,
            timeout=1,
            log=lambda k, t: None,
        )
        == 1
    )


def test_print_goes_to_the_log_with_a_cap() -> None:
    instance = load(
        "def process_event(e, m):\n    print('hello', 1, [2])\n    for i in range(100):\n        print('x' * 100)\n"
    )
    logs: list[tuple[str, str]] = []
    instance.call(
        instance.exports["process_event"],
        {},
        None,
        timeout=1,
        log=lambda k, t: logs.append((k, t)),
        limits=Limits(max_output_bytes=1000),
    )
    assert logs[0] == ("log", "hello 1 [2]")
    assert len([1 for kind, _ in logs if kind == "log"]) == 10
    assert logs[-1][0] == "warn" and "dropped" in logs[-1][1]


def test_timeout_is_fast_and_names_the_line() -> None:
    started = time.monotonic()
    with pytest.raises(PluginTimeout) as timed_out:
        run(
            "def process_event(e, m):\n    x = 0\n    while True:\n        x = x + 1\n",
            timeout=0.2,
        )
    assert time.monotonic() - started < 1.5
    assert (timed_out.value.file, timed_out.value.line) == ("main.py", 3)  # the loop
    assert "timed out after 0.2 seconds" in str(timed_out.value)


def test_module_code_runs_under_the_deadline() -> None:
    with pytest.raises(PluginTimeout):
        compile_plugin({"main.py": "while True:\n    pass\n"}).instantiate(timeout=0.2, log=lambda k, t: None)


def test_recursion_is_bounded_and_the_thread_survives() -> None:
    source = "def f(n):\n    return f(n + 1)\ndef process_event(e, m):\n    return f(0)\n"
    with pytest.raises(PluginResourceError) as deep:
        run(source, limits=Limits(max_depth=50))
    assert "recursion deeper than 50" in str(deep.value)
    assert run("def f(n):\n    return 0 if n == 0 else f(n - 1)\ndef process_event(e, m):\n    return f(150)\n") == 0


def test_runtime_error_shows_only_plugin_frames() -> None:
    with pytest.raises(PluginRuntimeError) as failed:
        run("import json\ndef helper(x):\n    return json.loads(x)\ndef process_event(e, m):\n    return helper('{')\n")
    error = failed.value
    assert error.error_type == "JSONDecodeError"
    assert (error.file, error.line) == ("main.py", 3)
    assert error.traceback == "main.py:5 in process_event\nmain.py:3 in helper"


def test_error_in_helper_file_names_it() -> None:
    with pytest.raises(PluginRuntimeError) as failed:
        run(
            "from lib import boom\ndef process_event(e, m):\n    return boom()\n",
            lib="def boom():\n    return 1 / 0\n",
        )
    assert (failed.value.file, failed.value.line, failed.value.error_type) == (
        "lib.py",
        2,
        "ZeroDivisionError",
    )


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"a": [1, 2.5, None, True, "s"]}, None),
        ({1: "a"}, PluginRuntimeError),
        ({"f": len}, PluginRuntimeError),
        (b"bytes", PluginRuntimeError),
        ({"big": "x" * 2000}, PluginResourceError),
        ([[[[[[]]]]]] * 3, None),
    ],
    ids=["plain", "int-key", "function", "bytes", "too-big", "nested"],
)
def test_export_value(value: Any, error: type[Exception] | None) -> None:
    if error is None:
        assert export_value(value, 1000) == value
    else:
        with pytest.raises(error):
            export_value(value, 1000)


def test_export_value_refuses_deep_nesting() -> None:
    value: list[Any] = []
    for _ in range(150):
        value = [value]
    with pytest.raises(PluginResourceError):
        export_value(value, 1 << 20)


def test_policy_violation_lists_every_error_in_every_file() -> None:
    with pytest.raises(PolicyViolation) as refused:
        compile_plugin(
            {
                "main.py": "import os\nx = 1\nimport sys\n",
                "lib.py": "y = ().__class__\n",
            }
        )
    found = [(v.file, v.line) for v in refused.value.violations]
    assert ("main.py", 1) in found and ("main.py", 3) in found and ("lib.py", 1) in found
    assert "main.py:1: import of 'os' is not allowed" in str(refused.value)


@pytest.mark.parametrize(
    ("sources", "fragment"),
    [
        ({"lib.py": "x = 1\n"}, "main file is missing"),
        ({"main.py": "", "sub/x.py": ""}, "no folders"),
        ({"main.py": "", "json.py": ""}, "shadow"),
        ({"main.py": "def f(:\n"}, "SyntaxError"),
        ({"main.py": "x = (" * 300 + ")" * 300}, "main.py"),
    ],
    ids=["no-main", "folder", "shadowing", "syntax", "deep-nesting"],
)
def test_compile_refusals(sources: dict[str, str], fragment: str) -> None:
    with pytest.raises(PolicyViolation) as refused:
        compile_plugin(sources)
    assert fragment in str(refused.value)


def test_names_plugins_can_see() -> None:
    visible = {name for name in plugin_builtins(lambda *a: None) if not name.startswith("_")}
    assert visible == {
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "BaseException",
        "DeprecationWarning",
        "Ellipsis",
        "Exception",
        "False",
        "ImportError",
        "IndexError",
        "KeyError",
        "LookupError",
        "MemoryError",
        "ModuleNotFoundError",
        "NameError",
        "None",
        "NotImplemented",
        "NotImplementedError",
        "OverflowError",
        "RecursionError",
        "RetryError",
        "RuntimeError",
        "StopIteration",
        "True",
        "TypeError",
        "UnboundLocalError",
        "UnicodeDecodeError",
        "UnicodeEncodeError",
        "UnicodeError",
        "UserWarning",
        "ValueError",
        "Warning",
        "ZeroDivisionError",
        "abs",
        "all",
        "any",
        "bin",
        "bool",
        "bytearray",
        "bytes",
        "callable",
        "chr",
        "classmethod",
        "complex",
        "delattr",
        "dict",
        "divmod",
        "enumerate",
        "filter",
        "float",
        "format",
        "frozenset",
        "getattr",
        "hasattr",
        "hash",
        "hex",
        "int",
        "isinstance",
        "issubclass",
        "iter",
        "len",
        "list",
        "map",
        "max",
        "min",
        "next",
        "oct",
        "ord",
        "pow",
        "property",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "setattr",
        "sorted",
        "staticmethod",
        "str",
        "sum",
        "super",
        "tuple",
        "zip",
    }
    assert (
        not {
            "open",
            "exec",
            "eval",
            "compile",
            "globals",
            "locals",
            "vars",
            "type",
            "object",
            "id",
            "input",
            "help",
            "dir",
            "slice",
            "string",
        }
        & visible
    )


def test_safe_module_members_are_pinned() -> None:
    from vm.safe_modules import SAFE_MODULE_NAMES, module_members

    assert SAFE_MODULE_NAMES == {
        "json",
        "re",
        "math",
        "datetime",
        "hashlib",
        "hmac",
        "random",
        "urllib.parse",
        "collections",
        "itertools",
        "functools",
        "decimal",
        "uuid",
        "base64",
        "time",
    }
    assert module_members("functools") == {"reduce", "cmp_to_key"}
    assert module_members("json") == {"dumps", "loads", "JSONDecodeError"}
    assert module_members("time") == {"time", "monotonic", "perf_counter"}
    assert "getcontext" not in module_members("decimal") and "uuid1" not in module_members("uuid")


def test_regex_is_linear_time() -> None:
    started = time.monotonic()
    assert run("import re\ndef process_event(e, m):\n    return re.match('(a+)+$', 'a' * 5000 + 'b') is None\n") is True
    assert time.monotonic() - started < 1
