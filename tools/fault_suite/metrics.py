"""The metrics endpoint under load: scraped while the suite runs, its sums checked against the emulator.

Odoo's workers each count the requests they send to KeyManager and Keycloak; the endpoint adds
up every worker's counts. The emulator counts every request that reached it (``received``,
those turned away while it was down included). The two agree when, per endpoint, the requests
Odoo counted minus those that never reached the emulator (connection refused, connect timeout,
no connection) equal what the emulator received.
"""

import os
import secrets
import threading
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

METRICS_PATH = "/g2p_encryption/metrics"
REQUESTS = "g2p_encryption_remote_requests_total"
ERRORS = "g2p_encryption_remote_errors_total"
# Causes of failed requests that never reached the server.
UNREACHED = ("refused", "connect_timeout", "connection")


def samples(text):
    """[(name, labels, value)] of a Prometheus text exposition."""
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def remote_counts(scraped):
    """{(service, endpoint): (requests, requests that did not reach the server)}."""
    counts = {}
    for name, labels, value in scraped:
        key = (labels.get("service"), labels.get("endpoint"))
        sent, unreached = counts.get(key, (0.0, 0.0))
        if name == REQUESTS:
            counts[key] = (sent + value, unreached)
        elif name == ERRORS and labels.get("cause") in UNREACHED:
            counts[key] = (sent, unreached + value)
    return counts


def reconcile(scraped, received):
    """[(endpoint, counted by Odoo, unreached, reached, received by the emulator)] per endpoint."""
    counts = remote_counts(scraped)
    rows = []
    for endpoint in sorted(set(received) | {endpoint for _service, endpoint in counts}):
        sent = sum(value[0] for (_service, name), value in counts.items() if name == endpoint)
        unreached = sum(value[1] for (_service, name), value in counts.items() if name == endpoint)
        rows.append(
            (endpoint, int(sent), int(unreached), int(sent - unreached), int(received.get(endpoint, 0)))
        )
    return rows


def error_causes(scraped):
    """{cause: failed requests} summed over services and endpoints."""
    causes = {}
    for name, labels, value in scraped:
        if name == ERRORS:
            causes[labels.get("cause")] = causes.get(labels.get("cause"), 0) + int(value)
    return causes


def config_with_token(odoo_conf, work_dir):
    """A copy of the Odoo configuration that opens the metrics endpoint with a new token."""
    token = secrets.token_urlsafe(24)
    path = os.path.join(work_dir, "odoo-metrics.conf")
    with open(odoo_conf, encoding="utf-8") as source:
        text = source.read()
    with open(path, "w", encoding="utf-8") as target:
        target.write(text.rstrip("\n") + f"\ng2p_encryption_metrics_token = {token}\n")
    os.chmod(path, 0o600)
    return path, token


class MetricsScraper(threading.Thread):
    """Scrapes the endpoint every ``interval`` seconds while the load runs, as Prometheus would."""

    def __init__(self, url, token, interval=5.0):
        super().__init__(name="metrics-scraper", daemon=True)
        self.url = url + METRICS_PATH
        self.headers = {"Authorization": f"Bearer {token}"}
        self.interval = interval
        self.stop_event = threading.Event()
        self.scrapes = 0
        self.failures = []
        self.keymanager_calls = []  # (seconds since start, requests counted) of each scrape
        self.started_at = time.monotonic()

    def scrape(self):
        response = requests.get(self.url, headers=self.headers, timeout=30)
        response.raise_for_status()
        return samples(response.text)

    def run(self):
        while not self.stop_event.is_set():
            try:
                scraped = self.scrape()
                self.scrapes += 1
                calls = sum(value for name, labels, value in scraped if name == REQUESTS)
                self.keymanager_calls.append((time.monotonic() - self.started_at, int(calls)))
            except (requests.RequestException, ValueError) as error:
                self.failures.append(f"{type(error).__name__}: {error}")
            self.stop_event.wait(self.interval)


def metric_processes(data_dir, odoo_pid):
    """Processes of the Odoo server ``odoo_pid`` that wrote metrics files (one file kind each)."""
    host_dir = os.path.join(data_dir, "g2p_encryption", "metrics", os.uname().nodename)
    if not os.path.isdir(host_dir):
        return 0
    pids = set()
    for name in os.listdir(host_dir):
        if name.startswith(f"{odoo_pid}-"):
            pids |= {entry.rsplit("_", 1)[-1] for entry in os.listdir(os.path.join(host_dir, name))}
    return len(pids)
