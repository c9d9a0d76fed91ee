# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.2.0: the scope of the registry's fields is ``g2p_in_registry`` (registrants and the
contacts under them) instead of ``is_registrant``: the default and derived rows of the encrypted
fields follow, before the registry reads them, and so do res.partner's rows an admin added with
``is_registrant`` (a model has one scope, its first row's; 17.0.2.0.0 made such rows from 1.x's
lists). Other rows an admin added keep theirs. From 1.x the table does not exist yet: 17.0.2.0.0
makes its rows with the new scope."""

from odoo.tools import sql


def migrate(cr, version):
    if not version or not sql.table_exists(cr, "g2p_encrypted_field"):
        return
    cr.execute(
        r"""UPDATE g2p_encrypted_field
               SET scope = regexp_replace(scope, '(^|\.)is_registrant$', '\1g2p_in_registry')
             WHERE scope ~ '(^|\.)is_registrant$'
               AND (origin IN ('default', 'derived')
                    OR (model_name = 'res.partner' AND scope = 'is_registrant'))"""
    )
