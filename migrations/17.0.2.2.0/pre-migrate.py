# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.2.0: the scope of the registry's fields is ``g2p_in_registry`` (registrants and the
contacts under them) instead of ``is_registrant``: the default and derived rows of the encrypted
fields follow, before the registry reads them (rows an admin added keep the scope they were given).
From 1.x the table does not exist yet: 17.0.2.0.0 makes its rows with the new scope."""

from odoo.tools import sql


def migrate(cr, version):
    if not version or not sql.table_exists(cr, "g2p_encrypted_field"):
        return
    cr.execute(
        r"""UPDATE g2p_encrypted_field
               SET scope = regexp_replace(scope, '(^|\.)is_registrant$', '\1g2p_in_registry')
             WHERE scope ~ '(^|\.)is_registrant$' AND origin IN ('default', 'derived')"""
    )
