"""The hostile-plugin corpus (tests/hostile/attack_*.py): every attack is refused or contained.

Each file's first line says what must happen: `# expect: compile` (PolicyViolation, nothing
runs) or `# expect: runtime <ErrorClass>` (compiles, and loading or calling `process_event`
raises that error). After each attack the host must be unaffected.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vm.errors
from vm.errors import PluginCallError, PolicyViolation
from vm.safe_modules import shared_modules
from vm.sandbox import compile_plugin

CORPUS = Path(__file__).parents[2] / "hostile"
ATTACKS = sorted(CORPUS.glob("attack_*.py"))
TIMEOUT = 0.5
# An attack expected to be stopped by another guard (size, recursion, ...) gets more time, so that
# guard is the one that fires however loaded the machine is: some take 0.3-0.45 s on an idle one.
GUARD_TIMEOUT = 5.0
REAL_DUMPS = json.dumps


def _expectation(path: Path) -> tuple[str, str | None]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    words = first.removeprefix("# expect: ").split()
    return words[0], (words[1] if len(words) > 1 else None)


def _run(source: str, timeout: float = TIMEOUT) -> list[tuple[str, str]]:
    logs: list[tuple[str, str]] = []
    log = lambda kind, text: logs.append((kind, text))
    instance = compile_plugin({"main.py": source}).instantiate(timeout=timeout, log=log)
    event = {"event": "pageview", "distinct_id": "u1", "properties": {}}
    instance.call(instance.exports["process_event"], event, None, timeout=timeout, log=log)
    return logs


def test_corpus_is_large() -> None:
    assert len(ATTACKS) >= 100


@pytest.mark.parametrize("path", ATTACKS, ids=[p.stem.removeprefix("attack_") for p in ATTACKS])
def test_attack_is_refused_or_contained(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    environ = dict(os.environ)
    stage, error_name = _expectation(path)
    source = path.read_text()

    if stage == "compile":
        with pytest.raises(PolicyViolation) as refused:
            compile_plugin({"main.py": source})
        assert all(v.file == "main.py" and v.line for v in refused.value.violations), str(refused.value)
    else:
        assert stage == "runtime", f"{path.name}: unknown stage {stage!r}"
        expected = getattr(vm.errors, error_name)
        with pytest.raises(PluginCallError) as contained:
            _run(source, TIMEOUT if expected is vm.errors.PluginTimeout else GUARD_TIMEOUT)
        assert type(contained.value) is expected, f"{type(contained.value).__name__}: {contained.value}"
        assert contained.value.file == "main.py", str(contained.value)
        assert "vm/" not in contained.value.traceback and "site-packages" not in contained.value.traceback

    assert json.dumps is REAL_DUMPS and json.dumps({"a": 1}) == '{"a": 1}'
    assert shared_modules()["json"].dumps({"a": 1}) == '{"a": 1}'
    assert dict(os.environ) == environ
    assert list(tmp_path.iterdir()) == []


def test_monkeypatching_one_instance_leaves_others_alone() -> None:
    attacker = compile_plugin({"main.py": "import json\ndef process_event(e, m):\n    json.dumps = len\n"})
    victim = compile_plugin({"main.py": "import json\ndef process_event(e, m):\n    return json.dumps(e)\n"})
    a = attacker.instantiate(timeout=TIMEOUT, log=lambda k, t: None)
    v = victim.instantiate(timeout=TIMEOUT, log=lambda k, t: None)
    with pytest.raises(PluginCallError):
        a.call(a.exports["process_event"], {}, None, timeout=TIMEOUT, log=lambda k, t: None)
    assert (
        v.call(
            v.exports["process_event"],
            {"x": 1},
            None,
            timeout=TIMEOUT,
            log=lambda k, t: None,
        )
        == '{"x": 1}'
    )


@pytest.mark.xfail(
    strict=True,
    reason="CPython 3.11 hashes nested tuples recursively in C: a known residual",
)
def test_deep_tuple_hash_does_not_crash_the_process() -> None:
    """A tuple nested ~10**6 deep used as a dict key overflows the C stack (SIGSEGV).

    No in-process guard sees it (tuples are built by displays, zip, *args, ...); the supervisor
    restarts the process. If CPython ever bounds this, the test XPASSes and must become a normal one.
    """
    script = textwrap.dedent(
        """
        from vm.sandbox import compile_plugin
        source = '''
        def process_event(event, meta):
            t = ()
            for i in range(1000000):
                t = (t,)
            return {t: 1}
        '''.replace("\\n        ", "\\n")
        inst = compile_plugin({"main.py": source}).instantiate(timeout=30, log=lambda k, t: None)
        try:
            inst.call(inst.exports["process_event"], {}, None, timeout=30, log=lambda k, t: None)
        except Exception:
            pass
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[3],
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
