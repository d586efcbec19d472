"""docs/ops: the Grafana dashboard loads with the structure Grafana needs, the alert rules parse,
every metric any PromQL expression names exists, and every alert has its runbook.

alerts.yml is YAML whose body is JSON (PyYAML is not a dependency): it is read here with `json`
after its leading comment lines. Where promtool is installed, it also checks the rules, runs their
unit tests (alerts.test.yml) and parses every dashboard expression.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

OPS = Path(__file__).resolve().parents[2] / "docs" / "ops"
ROOT = OPS.parents[1]
# Every module that defines metrics the server exposes.
METRIC_MODULES = (
    "plugin_server.core.metrics", "plugin_server.plugins.runtime", "plugin_server.plugins.logs", "plugin_server.plugins.meta", "workers.async_handler", "jobs.monitor",
)  # fmt: skip
PANEL_TYPES = {"row", "timeseries", "stat"}
SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")

# -- PromQL: which names in an expression are metrics ------------------------------------------

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
    "inf", "nan", "atan2",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_NAMES = re.compile(r"(?<![\w.$:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers that are not functions, aggregations,
    keywords, label names (in matchers and by/without lists), strings, durations or Grafana
    variables ($__rate_interval)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    return {name for name in _NAMES.findall(text) if name.lower() not in _KEYWORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum(rate(ingestion_events_ingested_total[$__rate_interval]))", {"ingestion_events_ingested_total"}),
        (
            'histogram_quantile(0.99, sum by (le, step) (rate(ingestion_step_seconds_bucket{step="parse"}[5m])))',
            {"ingestion_step_seconds_bucket"},
        ),
        ("max(jobs_queue_oldest_age_seconds) > 600", {"jobs_queue_oldest_age_seconds"}),
        ("a_total / clamp_min(b_total, 1e-9) > 0.01", {"a_total", "b_total"}),
        ("(x > 1000) and (delta((sum by (group) (x))[15m:1m]) > 0)", {"x"}),
        ('sum without (instance) (y{reason=~"a|b", le!="+Inf"}) unless on (group) z offset 5m', {"y", "z"}),
        ("sum by (le) (rate(h_bucket[5m])) * 100", {"h_bucket"}),
        ("vector(1) or on() absent(m)", {"m"}),
    ],
)
def test_metric_names_of_promql(expr, names):
    assert metric_names(expr) == names


# -- what the registry exposes --------------------------------------------------------------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": (),
    "info": ("_info",),
}


def registered_names() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def dashboard() -> dict:
    return json.loads((OPS / "grafana-dashboard.json").read_text())


def all_panels(board: dict) -> list[dict]:
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def alert_rules() -> list[dict]:
    text = (OPS / "alerts.yml").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    document = json.loads(body)
    return [rule for group in document["groups"] for rule in group["rules"]]


# -- the dashboard ----------------------------------------------------------------------------------


def test_dashboard_has_what_grafana_needs():
    board = dashboard()
    assert board["title"] and board["uid"]
    assert isinstance(board["schemaVersion"], int) and 36 <= board["schemaVersion"] <= 41
    assert board["time"]["from"] and board["time"]["to"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"

    panels = all_panels(board)
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), "panel ids must be unique integers"
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, panel
        assert panel["title"], panel["id"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h")), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert isinstance(target["expr"], str) and target["expr"].strip(), panel["title"]
            assert target["datasource"]["type"] == "prometheus"
        assert "unit" in panel["fieldConfig"]["defaults"], panel["title"]


def test_dashboard_panels_do_not_overlap():
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_dashboard_shows_what_the_issue_asks_for():
    exprs = " ".join(t["expr"] for p in all_panels(dashboard()) for t in p.get("targets", []))
    for metric in (
        "ingestion_events_ingested_total", "ingestion_events_dropped_total", "ingestion_events_dead_lettered_total",
        "ingestion_batch_seconds_bucket", "ingestion_step_seconds_bucket", "kafka_consumer_lag",
        "sink_flush_seconds_bucket", "ingestion_person_cache_total", "plugin_errors_total", "plugin_timeouts_total",
        "plugin_call_seconds_bucket", "plugin_configs_disabled_total", "plugin_abandoned_threads",
        "jobs_queue_depth", "jobs_queue_oldest_age_seconds", "plugin_log_entries_dropped_total",
    ):  # fmt: skip
        assert metric in exprs, metric


def test_every_metric_the_dashboard_and_alerts_use_exists():
    known = registered_names()
    used: dict[str, str] = {}
    for panel in all_panels(dashboard()):
        for target in panel.get("targets", []):
            used.update(dict.fromkeys(metric_names(target["expr"]), f"dashboard panel {panel['title']!r}"))
    for rule in alert_rules():
        used.update(dict.fromkeys(metric_names(rule["expr"]), f"alert {rule['alert']}"))
    assert len(used) >= 20
    missing = {name: where for name, where in used.items() if name not in known}
    assert not missing, f"metrics no module registers: {missing}"


# -- alerts and runbooks ----------------------------------------------------------------------------


def test_alert_rules_are_well_formed():
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
        assert rule["expr"].strip()
        assert DURATION.match(rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in SEVERITIES
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["runbook_url"] == f"docs/ops/runbooks/{rule['alert']}.md"
    # what the issue asks to alert on (a scheduler alert cannot exist before the scheduler)
    assert {
        "KafkaConsumerLagGrowing", "EventsDeadLettered", "BatchesRetrying", "PluginErrorRateHigh",
        "PluginConfigDisabled", "PluginThreadsAbandoned", "JobQueueBacklog",
    } <= set(names)  # fmt: skip


def test_every_alert_has_a_runbook_and_the_index_lists_them():
    index = (OPS / "README.md").read_text()
    alerts = {r["alert"] for r in alert_rules()}
    for alert in alerts:
        runbook = ROOT / f"docs/ops/runbooks/{alert}.md"
        assert runbook.is_file(), runbook
        text = runbook.read_text()
        assert text.startswith(f"# {alert}\n")
        for section in ("## What it means", "## How to look", "## How to fix"):
            assert section in text, (alert, section)
        assert f"runbooks/{alert}.md" in index
    assert {p.stem for p in (OPS / "runbooks").glob("*.md")} == alerts, "a runbook without an alert"
    assert "scheduler" in index.lower()


def test_runbook_links_resolve():
    for page in [OPS / "README.md", *(OPS / "runbooks").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+\.(?:md|json|yml))\)", page.read_text()):
            assert (page.parent / target).is_file(), (page.name, target)


# -- promtool, where installed (apt-get install prometheus): the real parser and rule evaluator ------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")


@needs_promtool
def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run([PROMTOOL, *args], cwd=OPS, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_parses_every_dashboard_expression(tmp_path):
    rules = [  # Grafana's interval variables become fixed ranges
        {
            "record": f"dashboard:panel{panel['id']}:{target['refId']}",
            "expr": target["expr"].replace("$__rate_interval", "5m").replace("$__range", "1h"),
        }
        for panel in all_panels(dashboard())
        for target in panel.get("targets", [])
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
