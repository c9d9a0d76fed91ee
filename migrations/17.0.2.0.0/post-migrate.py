# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""From 1.x: the transparent field engine.

* The registry provider's field lists (``registrant_encrypted_fields``, ``registrant_searchable_fields``)
  become rows of ``g2p.encrypted.field`` (the defaults are created by the module's data; fields an
  admin had added are listed, defaults they had removed are archived, indexes follow the
  searchable list).
* Blind-index rows name the index key that made them (the registry provider's).
* ``res_partner.is_encrypted`` is gone: the format of each value says whether it is ciphertext.
* The decryption log's rows of 1.x are chained (tamper evidence), in their order.
* Registry jobs of 1.x keep their progress: what they had done becomes one chunk, done (progress is
  read from the chunks now); a running job is planned again over what is left to convert.
* Then ``end-migrate.py``, once every module is loaded, recomputes the derived fields and starts the
  re-encryption of 1.x values.
"""

import logging

from odoo import SUPERUSER_ID, api
from odoo.tools import sql

_logger = logging.getLogger(__name__)

INDEX_KINDS = {"email": "email", "phone": "phone", "mobile": "phone"}


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    _field_lists(env)
    _blind_index_keys(env)
    _job_progress(cr)
    if sql.column_exists(cr, "res_partner", "is_encrypted"):
        cr.execute("ALTER TABLE res_partner DROP COLUMN is_encrypted")
    # The rows of 1.x join the decryption log's hash chain, in their order.
    env["g2p.decryption.log"]._chain_unchained()


def _job_progress(cr):
    if not sql.column_exists(cr, "g2p_encryption_job", "last_id"):
        return
    # 1.x counted the records a job had looked at (done) up to last_id; "changed" and the
    # skipped records came later, and may be missing.
    changed = "coalesce(changed, 0)" if sql.column_exists(cr, "g2p_encryption_job", "changed") else "0"
    skipped = "skipped_ids" if sql.column_exists(cr, "g2p_encryption_job", "skipped_ids") else "NULL"
    cr.execute(
        f"""INSERT INTO g2p_encryption_job_chunk
                   (job_id, sequence, start_id, end_id, records, state, done, changed, skipped_ids, attempts)
            SELECT id, -1, 1, last_id, coalesce(done, 0), 'done', coalesce(done, 0), {changed}, {skipped}, 1
              FROM g2p_encryption_job j
             WHERE coalesce(last_id, 0) > 0
               AND NOT EXISTS (SELECT 1 FROM g2p_encryption_job_chunk c WHERE c.job_id = j.id)"""
    )
    _logger.info("Registry jobs of 1.x: the progress of %s kept as a chunk done", cr.rowcount)
    cr.execute("UPDATE g2p_encryption_job SET planned = (state <> 'running')")
    for column in ("last_id", "done", "changed", "skipped_ids"):
        cr.execute(f"ALTER TABLE g2p_encryption_job DROP COLUMN IF EXISTS {column}")


def _field_lists(env):
    cr = env.cr
    if not sql.column_exists(cr, "g2p_encryption_provider", "registrant_encrypted_fields"):
        return
    provider = env["g2p.encryption.provider"]._get_registry_provider()
    cr.execute(
        """SELECT registrant_encrypted_fields, registrant_searchable_fields
           FROM g2p_encryption_provider WHERE id = %s""",
        (provider.id,),
    )
    row = cr.fetchone()
    encrypted = [name.strip() for name in (row[0] or "").split(",") if name.strip()]
    searchable = {name.strip() for name in (row[1] or "").split(",") if name.strip()}
    configs = env["g2p.encrypted.field"].with_context(active_test=False)
    partner_rows = configs.search([("model_name", "=", "res.partner"), ("origin", "=", "default")])
    for config in partner_rows:
        if config.field_name in ("name", "email", "phone", "mobile", "street", "street2", "city", "zip"):
            if config.field_name not in encrypted:
                config.active = False
            elif config.field_name not in searchable and config.field_name != "name":
                config.index_kind = False
    known = set(configs.search([("model_name", "=", "res.partner")]).mapped("field_name"))
    for name in encrypted:
        if name not in known:
            configs.create(
                {
                    "model_name": "res.partner",
                    "field_name": name,
                    "scope": "g2p_in_registry",
                    "index_kind": INDEX_KINDS.get(name, "text") if name in searchable else False,
                }
            )
    for column in ("registrant_encrypted_fields", "registrant_searchable_fields"):
        cr.execute(f'ALTER TABLE g2p_encryption_provider DROP COLUMN "{column}"')  # pylint: disable=sql-injection


def _blind_index_keys(env):
    provider = env["g2p.encryption.provider"]._get_registry_provider()
    env.cr.execute(
        """SELECT key_id FROM g2p_encryption_key
           WHERE provider_id = %s AND usage = 'index' ORDER BY id DESC LIMIT 1""",
        (provider.id,),
    )
    row = env.cr.fetchone()
    if row:
        env.cr.execute("UPDATE g2p_blind_index SET index_key_id = %s WHERE index_key_id IS NULL", (row[0],))
