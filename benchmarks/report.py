"""Rendering benchmark results: summary.json's shape, the Markdown table and the plots (pure,
except for writing files). Every figure is reported with the baseline it is a ratio to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REQUIRED_KEYS = (
    "raw_ceiling_eps", "e2e_eps_1proc", "e2e_eps_2proc", "ratio_to_raw", "scaling_2proc", "latency_ms",
    "vm_overhead", "person_growth", "stack_rss_mb", "cpu_s_per_million", "catchup", "machine",
)  # fmt: skip


def missing_keys(summary: dict[str, Any]) -> list[str]:
    return [key for key in REQUIRED_KEYS if key not in summary]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _by_process(rss: dict[str, float] | None) -> str:
    """`python 640, postgres 900, ...`: the biggest first, without the total."""
    if not rss:
        return "per process not measured"
    parts = sorted(((mb, name) for name, mb in rss.items() if name != "total"), reverse=True)
    return ", ".join(f"{name} {_fmt(mb)}" for mb, name in parts)


def markdown(summary: dict[str, Any]) -> str:
    """The results as a Markdown table: figure, value, and what it is measured against."""
    raw = summary.get("raw_ceiling_eps")
    rows = [
        ("Raw ceiling, direct sink (events/s)", summary.get("raw_ceiling_eps"), "baseline"),
        ("Raw ceiling, Kafka sink + writer (events/s)", summary.get("raw_ceiling_kafka_eps"), "baseline (kafka path)"),
        (
            "End to end, 1 process (events/s)",
            summary.get("e2e_eps_1proc"),
            f"ratio to raw: {_fmt(summary.get('ratio_to_raw'))}",
        ),
        (
            "End to end, 2 processes (events/s)",
            summary.get("e2e_eps_2proc"),
            f"scaling: {_fmt(summary.get('scaling_2proc'))}x",
        ),
    ]
    export = summary.get("export") or {}
    if export:
        rows.append((
            "End to end with an export_events plugin too, 1 process (events/s)", export.get("eps"),
            (f"ratio to end to end without it: {_fmt(export.get('ratio_to_e2e'))}; "
             f"{_fmt(export.get('exported'))} of {_fmt(export.get('events'))} events exported"),
        ))  # fmt: skip
    latency = summary.get("latency_ms") or {}
    if latency:
        rows.append((
            "Visibility latency p50 / p95 / p99 (ms)",
            f"{_fmt(latency.get('p50'))} / {_fmt(latency.get('p95'))} / {_fmt(latency.get('p99'))}",
            f"at {_fmt(latency.get('load_eps'))} events/s (50% of 1-process capacity)",
        ))  # fmt: skip
    vm = summary.get("vm_overhead") or {}
    if vm:
        rows.append(("Plugin VM: trivial process_event (ns/event)", f"{_fmt(vm.get('sandboxed_ns'))}",
                     f"plain Python {_fmt(vm.get('plain_ns'))} ns: {_fmt(vm.get('ratio'))}x"))  # fmt: skip
    for point in summary.get("person_growth") or []:
        ratio = point["eps"] / raw if raw else None
        rows.append(
            (f"Person-heavy events/s with {point['persons']:,} persons", point["eps"], f"ratio to raw: {_fmt(ratio)}")
        )
    rows.append(("Stack RSS at ~1,000 events/s (MB)", summary.get("stack_rss_mb"),
                 f"all processes: {_by_process(summary.get('stack_rss_by_process_mb'))}"))  # fmt: skip
    rows.append(("CPU seconds per million events", summary.get("cpu_s_per_million"), "all processes"))
    catchup = summary.get("catchup") or {}
    if catchup:
        eps = catchup["events"] / catchup["seconds"] if catchup.get("seconds") else None
        rows.append((f"Catch-up of {catchup['events']:,} queued events (s)", catchup.get("seconds"),
                     (f"{_fmt(eps)} events/s, peak RSS {_fmt(catchup.get('peak_rss_mb'))} MB: "
                      f"{_by_process(catchup.get('peak_rss_by_process_mb'))}")))  # fmt: skip
    machine = summary.get("machine") or {}
    lines = [
        f"# Benchmark results ({'quick' if summary.get('quick') else 'full'} run)",
        "",
        (
            f"Machine: {machine.get('cores')} cores, Python {machine.get('python')}. Ratios are against baselines "
            "measured in the same run on the same machine; absolute figures on a shared machine are noise."
        ),
        "",
        "| figure | value | against |",
        "|---|---|---|",
        *(f"| {name} | {_fmt(value) if value is not None else 'n/a'} | {against} |" for name, value, against in rows),
    ]
    return "\n".join(lines) + "\n"


def write(summary: dict[str, Any], out: Path) -> list[Path]:
    """summary.json, summary.md and the plots (when matplotlib is installed); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "summary.json", out / "summary.md"]
    written[0].write_text(json.dumps(summary, indent=2) + "\n")
    written[1].write_text(markdown(summary))
    written.extend(plots(summary, out))
    return written


def plots(summary: dict[str, Any], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    growth = summary.get("person_growth") or []
    if growth:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([p["persons"] for p in growth], [p["eps"] for p in growth], marker="o")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)  # from zero: run-to-run noise must not look like a trend
        ax.set_xlabel("persons in Postgres")
        ax.set_ylabel("events/s (30% identify/alias/$set)")
        ax.set_title("Cost as the person table grows")
        ax.grid(True, alpha=0.3)
        written.append(_save(fig, out / "person_growth.png", plt))
    bars = [(k, summary.get(k)) for k in ("raw_ceiling_eps", "raw_ceiling_kafka_eps", "e2e_eps_1proc", "e2e_eps_2proc")]
    bars.append(("e2e_eps_export", (summary.get("export") or {}).get("eps")))
    bars = [(k, v) for k, v in bars if v]
    if bars:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar([k.replace("_eps", "").replace("_", " ") for k, _ in bars], [v for _, v in bars])
        ax.set_ylabel("events/s")
        ax.set_title("Throughput against the raw ceiling")
        written.append(_save(fig, out / "throughput.png", plt))
    samples = (summary.get("latency_ms") or {}).get("samples_ms")
    if samples:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist(samples, bins=40)
        ax.set_xlabel("produce to queryable (ms)")
        ax.set_ylabel("events")
        ax.set_title("Visibility latency")
        written.append(_save(fig, out / "latency.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
