# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Metrics an operator scrapes: the server's counters (``core.monitoring``) and the database's state.

Counters and histograms are kept by ``core.metrics`` in a directory of the server, summed over
all its workers at each scrape. This module chooses the directory (server configuration option
``g2p_encryption_metrics_dir``, default ``<data_dir>/g2p_encryption/metrics``) as soon as the
addon is loaded, in every process, and reads at scrape time what the database says: whether the
registry is encrypted, key ages against their rotation age, sealed providers, job progress.
"""

import logging
import os
import time
from datetime import timezone

from odoo import api, fields, models
from odoo.service import server as odoo_server
from odoo.tools import config

from ..core import metrics

_logger = logging.getLogger(__name__)

DIR_OPTION = "g2p_encryption_metrics_dir"
PARAM_ENCRYPT = "g2p_encryption.encrypt_registry"
PARAM_DECRYPT = "g2p_encryption.decrypt_registry"
RECENT_JOB_DAYS = 1  # finished jobs stay visible this long


def server_pid():
    """The pid of the server's main process: a prefork worker's master, a gevent process's parent."""
    server = odoo_server.server
    if server is None:
        return None
    return getattr(server, "ppid", None) if isinstance(server, odoo_server.GeventServer) else server.pid


def setup_directory():
    """Count into the directory of this server (``core.metrics.use_directory``)."""
    base = config.get(DIR_OPTION) or f"{config['data_dir']}/g2p_encryption/metrics"
    pid = server_pid()
    if pid is None:
        pid = os.getpid()  # a shell, a test run, odoo-bin --stop-after-init: this process
    return metrics.use_directory(base, pid)


def sealed_state(env):
    """{provider: sealed on this server} of the providers whose master key custodians hold.

    The custody of this version: ``custody_mode`` and the custody record's ``_unsealed_here``.
    Custody is the one place that knows; point this function at it when custody changes.
    """
    providers = env["g2p.encryption.provider"].sudo().with_context(active_test=False).search([])
    if "custody_mode" not in providers._fields:
        return {}
    return {
        provider: not provider.custody_id._unsealed_here()
        for provider in providers
        if provider.custody_mode == "sealed"
    }


class EncryptionMetrics(models.AbstractModel):
    _name = "g2p.encryption.metrics"
    _description = "Encryption Metrics"

    @api.model
    def _gauges(self):
        """[(name, help, {labels: value})] of the database's state, read at scrape time."""
        env = self.env(su=True)
        now = time.time()
        params = env["ir.config_parameter"]
        gauges = [
            (
                "registry_encrypting",
                '"Encrypt registry" is on.',
                {(): float(bool(params.get_param(PARAM_ENCRYPT)))},
            ),
            (
                "registry_decrypting",
                '"Decrypt registry" is on.',
                {(): float(bool(params.get_param(PARAM_DECRYPT)))},
            ),
        ]
        providers = env["g2p.encryption.provider"].with_context(active_test=False).search([])
        registry_id = providers._registry_provider_id()
        gauges.append(
            (
                "provider_info",
                "Encryption providers (1), with their type and whether they are the registry's.",
                {(str(p.id), p.name, p.type, str(p.id == registry_id).lower()): 1.0 for p in providers},
                ("provider", "provider_name", "type", "registry"),
            )
        )
        gauges.append(
            (
                "provider_sealed",
                "1 while a provider in sealed custody is sealed on this server (its keys unusable).",
                {(str(p.id),): float(sealed) for p, sealed in sealed_state(env).items()},
                ("provider",),
            )
        )
        keys = env["g2p.encryption.key"].search([("state", "=", "active")])
        ages = {}
        for key in keys:
            since = key["activated_date"] if "activated_date" in key._fields else None
            since = since or key.create_date
            age = max(0.0, now - since.replace(tzinfo=timezone.utc).timestamp()) if since else 0.0
            label = (str(key.provider_id.id), key.usage)
            ages[label] = max(age, ages.get(label, 0.0))
        gauges.append(
            (
                "key_age_seconds",
                "Age of the active key of each provider and usage.",
                ages,
                ("provider", "usage"),
            )
        )
        if "rotate_after_days" in providers._fields:
            gauges.append(
                (
                    "key_rotation_age_seconds",
                    "Age at which a provider's data and signing keys are rotated (0: never).",
                    {(str(p.id),): float(p.rotate_after_days * 86400) for p in providers},
                    ("provider",),
                )
            )
        gauges += self._job_gauges(env)
        return gauges

    @api.model
    def _job_gauges(self, env):
        since = fields.Datetime.subtract(fields.Datetime.now(), days=RECENT_JOB_DAYS)
        jobs = env["g2p.encryption.job"].search(
            ["|", ("state", "in", ("running", "failed")), ("finished_at", ">=", since)]
        )
        records, chunks, states = {}, {}, {}
        for job in jobs:
            labels = (str(job.id), job.kind, job.res_model)
            if job.planned:  # counted when planned: unknown before
                records[(*labels, "total")] = float(job.total)
            records[(*labels, "done")] = float(job.done)
            records[(*labels, "changed")] = float(job.changed)
            chunks[(*labels, "done")] = float(job.chunks_done)
            chunks[(*labels, "todo")] = float(job.chunk_count - job.chunks_done)
            for state in ("running", "done", "failed"):
                states[(*labels, state)] = float(job.state == state)
        job_labels = ("job", "kind", "model")
        return [
            (
                "job_progress_records",
                "Records of a registry job: total, done, changed.",
                records,
                (*job_labels, "state"),
            ),
            (
                "job_progress_chunks",
                "Chunks of a registry job, done and to do.",
                chunks,
                (*job_labels, "state"),
            ),
            ("job_state", "State of a registry job (1 for its state).", states, (*job_labels, "state")),
        ]


class DatabaseCollector:
    """A ``prometheus_client`` collector of :meth:`EncryptionMetrics._gauges` of one database
    (``env``; None: the database could not be reached, only ``database_gauges_up 0``)."""

    def __init__(self, env=None):
        self.env = env

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        # The database's state must not cost the scrape the workers' counters: a failure to read it
        # is logged and shows as ``database_gauges_up 0`` (something to alert on).
        gauges = None
        if self.env is not None:
            try:
                with self.env.cr.savepoint():
                    gauges = self.env["g2p.encryption.metrics"]._gauges()
            except Exception:  # pylint: disable=broad-except
                _logger.exception("Metrics scrape: the database's gauges could not be read")
        up = GaugeMetricFamily(
            f"{metrics.PREFIX}_database_gauges_up", "1 when the database's gauges below were read, else 0."
        )
        up.add_metric([], float(gauges is not None))
        yield up
        for name, documentation, samples, *label_names in gauges or ():
            family = GaugeMetricFamily(
                f"{metrics.PREFIX}_{name}", documentation, labels=list(label_names[0]) if label_names else []
            )
            for labels, value in samples.items():
                family.add_metric(list(labels), value)
            yield family


setup_directory()
