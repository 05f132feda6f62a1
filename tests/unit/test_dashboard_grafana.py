"""The compose monitoring files: Grafana's dashboard asks only for metrics aiub exports, and
Prometheus scrapes every service the design names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from shared.config import load_config
from shared.metrics import GatewayMetrics, HealthMetrics, ProviderMetrics, RouterMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
PROMQL_WORDS = {"sum", "max", "min", "avg", "rate", "increase", "histogram_quantile", "by", "without", "on",
                "ignoring", "and", "or", "unless"}


def exported() -> set[str]:
    registry = CollectorRegistry()
    for metrics in (ProviderMetrics, RouterMetrics, HealthMetrics, GatewayMetrics):
        metrics(registry)
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", expr))
    return words - PROMQL_WORDS


def dashboard() -> dict:  # type: ignore[type-arg]
    return json.loads((DEPLOY / "grafana" / "dashboards" / "aiub.json").read_text())  # type: ignore[no-any-return]


def test_every_panel_queries_metrics_aiub_exports() -> None:
    known = exported()
    panels = [p for p in dashboard()["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "aiub-prometheus"
            unknown = metric_names(target["expr"]) - known
            assert not unknown, f"{panel['title']}: {unknown} are not exported (known: {sorted(known)})"


def test_the_spec_panels_are_there() -> None:
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dashboard()["panels"] if "targets" in p}
    assert "rate(provider_requests_total[5m])" in exprs["Request rate by provider"]
    assert "histogram_quantile(0.95" in exprs["P95 latency by provider (total, successful attempts)"]
    assert "provider_errors_total" in exprs["Error rate by provider"]
    assert "cache_hits_total" in exprs["Cache effectiveness"] and "cache_misses_total" in exprs["Cache effectiveness"]


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, panel["title"]
        cells |= mine


def test_prometheus_scrapes_every_service_and_every_provider_worker() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"gateway", "router", "health", "workers"}
    assert jobs["gateway"]["dns_sd_configs"][0]["port"] == 4000
    for name in ("router", "health", "workers"):
        assert jobs[name]["dns_sd_configs"][0]["port"] == 9464
    workers = set(jobs["workers"]["dns_sd_configs"][0]["names"])
    assert workers == {f"worker-{key}" for key in load_config(ROOT / "config").providers}


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert (source["uid"], source["url"]) == ("aiub-prometheus", "http://prometheus:9090")
    provider = yaml.safe_load((provisioning / "dashboards" / "aiub.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
