# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.0.0, custody (after the models load): custody moves to its own model; events are chained.

* Each provider in sealed custody gets its ``g2p.encryption.custody`` record, with the threshold,
  number of shares, check value, master key id, share set and date that were on the provider;
  then the provider's old custody columns are dropped. The custodians' shares keep working: the
  master key and its check value do not change.
* The events renamed before the load (``pre-custody.py``) are chained, in the order they were
  written, so that the integrity check covers them from now on.
* The table of the dialog that showed new shares once (now the key ceremony's) is dropped.
"""

from odoo import SUPERUSER_ID, api

PROVIDER_COLUMNS = (
    "custody_mode",
    "custody_threshold",
    "custody_share_count",
    "custody_check_value",
    "custody_master_key_id",
    "custody_share_set_id",
    "custody_initialised_date",
)


def provider_columns(cr):
    cr.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'g2p_encryption_provider' "
        "AND column_name IN %s",
        (PROVIDER_COLUMNS,),
    )
    return {row[0] for row in cr.fetchall()}


def move_custody_to_its_model(cr):
    if provider_columns(cr) != set(PROVIDER_COLUMNS):
        return 0
    cr.execute(
        """INSERT INTO g2p_encryption_custody
                  (provider_id, threshold, share_count, check_value, master_key_id, share_set_id,
                   initialised_date, create_uid, create_date, write_uid, write_date)
           SELECT id, custody_threshold, custody_share_count, custody_check_value, custody_master_key_id,
                  custody_share_set_id, custody_initialised_date, %s, now() AT TIME ZONE 'UTC', %s,
                  now() AT TIME ZONE 'UTC'
             FROM g2p_encryption_provider
            WHERE custody_mode = 'sealed'
           ON CONFLICT (provider_id) DO NOTHING""",
        (SUPERUSER_ID, SUPERUSER_ID),
    )
    moved = cr.rowcount
    cr.execute(
        "ALTER TABLE g2p_encryption_provider " + ", ".join(f"DROP COLUMN {c}" for c in PROVIDER_COLUMNS)
    )
    return moved


def drop_shares_wizard(cr):
    """The dialog that showed new shares once is gone (the ceremony shows them now): its table too."""
    cr.execute("DROP TABLE IF EXISTS g2p_encryption_custody_shares_wizard CASCADE")


def chain_events(cr):
    env = api.Environment(cr, SUPERUSER_ID, {})
    return env["g2p.encryption.event"]._chain_unchained()


def migrate(cr, version):
    if not version:
        return
    move_custody_to_its_model(cr)
    drop_shares_wizard(cr)
    chain_events(cr)
