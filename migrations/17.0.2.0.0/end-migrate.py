# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""From 1.x, once every module is loaded (their fields computed from ours exist by then).

* Stored fields computed from encrypted ones held, in 1.x, a mask or a copy of another field's
  ciphertext (``complete_name``, ``phone_sanitized``...): they are computed again from the
  plaintext, and stored encrypted.
* Values written by 1.x (``g2pe1.``, bound to model and field) stay readable; a re-encryption job
  moves them to the current format, bound to their record.
"""

import logging

from odoo import SUPERUSER_ID, api

_logger = logging.getLogger(__name__)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    _recompute_derived(env)
    _reencrypt_version_1(env)


def _recompute_derived(env, batch=1000):
    """Compute again the stored encrypted fields that are computed, for the records in scope."""
    for model_name in env["g2p.encryption.job"]._registry_models():
        model = env[model_name].with_context(active_test=False)
        fields = [
            field
            for name, field in model._fields.items()
            if name in model._g2p_encrypted and field.store and field.compute
        ]
        if not fields:
            continue
        records = model.search([])._g2p_in_scope()
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            for field in fields:
                env.add_to_compute(field, chunk)
            chunk.flush_recordset([field.name for field in fields])
            env.invalidate_all()
        _logger.info(
            "%s: %s computed again for %s records", model_name, [f.name for f in fields], len(records)
        )


def _reencrypt_version_1(env):
    models_with_v1 = []
    for model_name in env["g2p.encryption.job"]._registry_models():
        model = env[model_name]
        columns = [name for name in model._g2p_encrypted if model._fields[name].store]
        condition = " OR ".join(f'"{column}" LIKE %s' for column in columns)
        env.cr.execute(
            f'SELECT 1 FROM "{model._table}" WHERE {condition} LIMIT 1',  # pylint: disable=sql-injection
            ["g2pe1.%"] * len(columns),
        )
        if env.cr.fetchone():
            models_with_v1.append(model_name)
    if models_with_v1:
        env["g2p.encryption.job"]._start_registry("reencrypt")
        _logger.info(
            "Values written by g2p_encryption 1.x in %s: a re-encryption job moves them", models_with_v1
        )
