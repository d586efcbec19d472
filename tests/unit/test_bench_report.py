"""Benchmark summaries: the keys issue 6 asks for, the Markdown table, the files written."""

from __future__ import annotations

import json

from benchmarks.report import REQUIRED_KEYS, markdown, missing_keys, write

SUMMARY = {
    "quick": True, "raw_ceiling_eps": 30000, "raw_ceiling_kafka_eps": 11000, "e2e_eps_1proc": 3000,
    "e2e_eps_2proc": 5100, "ratio_to_raw": 0.1, "scaling_2proc": 1.7,
    "latency_ms": {"p50": 350, "p95": 800, "p99": 1200, "load_eps": 1500, "samples_ms": [300, 350, 1200]},
    "export": {"events": 20000, "eps": 2400, "exported": 20000, "ratio_to_e2e": 0.8},
    "vm_overhead": {"plain_ns": 200, "sandboxed_ns": 20000, "ratio": 100.0},
    "person_growth": [{"persons": 10000, "eps": 2900}, {"persons": 100000, "eps": 2700}],
    "stack_rss_mb": 900.5, "stack_rss_by_process_mb": {"python": 600.5, "postgres": 280.0, "tansu": 20.0, "total": 900.5},
    "cpu_s_per_million": 600.0,
    "catchup": {"events": 50000, "seconds": 20.0, "peak_rss_mb": 1000.0,
                "peak_rss_by_process_mb": {"tansu": 500.0, "python": 500.0, "total": 1000.0}},
    "machine": {"cores": 2, "python": "3.11.7"},
}  # fmt: skip


def test_the_summary_has_every_key_the_issue_asks_for():
    assert missing_keys(SUMMARY) == []
    assert missing_keys({"machine": {}}) == [k for k in REQUIRED_KEYS if k != "machine"]


def test_markdown_reports_each_figure_with_its_baseline():
    text = markdown(SUMMARY)
    assert text.startswith("# Benchmark results (quick run)")
    for fragment in ("| Raw ceiling, direct sink (events/s) | 30,000 | baseline |", "ratio to raw: 0.100",
                     "scaling: 1.700x", "350 / 800 / 1,200", "at 1,500 events/s", "100,000 persons | 2,700",
                     "2,500 events/s, peak RSS 1,000 MB: tansu 500, python 500", "plain Python 200 ns: 100x",
                     "all processes: python 600, postgres 280, tansu 20",
                     ("export_events plugin too, 1 process (events/s) | 2,400 | ratio to end to end without it: 0.800; "
                      "20,000 of 20,000 events exported")):  # fmt: skip
        assert fragment in text, fragment


def test_markdown_copes_with_missing_figures():
    text = markdown({"machine": {"cores": 2, "python": "3.11"}})
    assert "| End to end, 1 process (events/s) | n/a |" in text
    assert "all processes: per process not measured" in text


def test_write_produces_json_and_markdown(tmp_path):
    written = write(SUMMARY, tmp_path / "results")
    assert json.loads((tmp_path / "results" / "summary.json").read_text()) == SUMMARY
    assert (tmp_path / "results" / "summary.md").read_text() == markdown(SUMMARY)
    assert {p.name for p in written} >= {"summary.json", "summary.md"}
