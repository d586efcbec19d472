"""benchmarks/profile.py: py-spy's raw samples folded into µs per event."""

from __future__ import annotations

from benchmarks.profile import collapse, report_samples

RAW = [
    "thread (1): MainThread;run (trio/_run.py:10);process (plugin_server/pipeline.py:5);apply (plugin_server/p.py:3) 6",
    "thread (1): MainThread;run (trio/_run.py:10);process (plugin_server/pipeline.py:7) 2",
    "thread (2): Trio thread 0;worker (trio/_threads.py:4);call (vm/sandbox.py:9) 2",
    "thread (1): MainThread;recurse (a.py:1);recurse (a.py:2);recurse (a.py:1) 4",
    "",  # py-spy ends the file with a newline
    "garbage without a count",
]


def test_collapse_counts_each_function_once_per_stack_and_its_own_samples():
    total, inclusive, own = collapse(RAW)
    assert total == 14
    assert inclusive["run (_run.py)"] == 8
    assert inclusive["process (pipeline.py)"] == 8  # two lines of one function together
    assert inclusive["recurse (a.py)"] == 4  # recursion is not counted three times
    assert own == {"apply (p.py)": 6, "process (pipeline.py)": 2, "call (sandbox.py)": 2, "recurse (a.py)": 4}


def test_report_spreads_samples_over_events():
    text = report_samples(RAW, events=1000, rate=100, top=3)
    # one sample = 10 ms; 14 samples over 1,000 events = 140 µs per event
    assert text.splitlines()[0] == "GIL held: 140 µs per event over 1000 events (14 samples at 100/s)"
    assert "      80.0  run (_run.py)" in text
    assert "      60.0  apply (p.py)" in text


def test_report_of_no_samples():
    assert report_samples([], events=10, rate=100).startswith("GIL held: 0 µs per event")
