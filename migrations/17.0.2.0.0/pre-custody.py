# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.0.0, custody (before the models load): the custody log becomes the key and custody events.

``g2p.encryption.custody.log`` is renamed ``g2p.encryption.event``: its table, sequence, indexes
and constraints, and its model, fields and external ids in the registry's own tables, so that no
row is lost and the new model finds them. Imports nothing from the addon.
"""

OLD_MODEL, NEW_MODEL = "g2p.encryption.custody.log", "g2p.encryption.event"
OLD_TABLE, NEW_TABLE = "g2p_encryption_custody_log", "g2p_encryption_event"


def table_exists(cr, table):
    cr.execute("SELECT 1 FROM information_schema.tables WHERE table_name = %s", (table,))
    return bool(cr.fetchone())


def rename_event_log(cr):
    if not table_exists(cr, OLD_TABLE) or table_exists(cr, NEW_TABLE):
        return
    cr.execute(f"ALTER TABLE {OLD_TABLE} RENAME TO {NEW_TABLE}")
    cr.execute(f"ALTER SEQUENCE IF EXISTS {OLD_TABLE}_id_seq RENAME TO {NEW_TABLE}_id_seq")
    # Indexes and constraints keep the old table's name in theirs: give them the new one.
    renames = (
        (
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND conname LIKE %s",
            f'ALTER TABLE {NEW_TABLE} RENAME CONSTRAINT "{{old}}" TO "{{new}}"',
        ),
        (
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s",
            'ALTER INDEX "{old}" RENAME TO "{new}"',
        ),
    )
    for query, statement in renames:
        cr.execute(query, (NEW_TABLE, OLD_TABLE + "%"))
        for (name,) in cr.fetchall():
            cr.execute(statement.format(old=name, new=NEW_TABLE + name[len(OLD_TABLE) :]))
    cr.execute("UPDATE ir_model SET model = %s WHERE model = %s", (NEW_MODEL, OLD_MODEL))
    cr.execute("UPDATE ir_model_fields SET model = %s WHERE model = %s", (NEW_MODEL, OLD_MODEL))
    cr.execute("UPDATE ir_model_fields SET relation = %s WHERE relation = %s", (NEW_MODEL, OLD_MODEL))
    cr.execute("UPDATE ir_model_data SET model = %s WHERE model = %s", (NEW_MODEL, OLD_MODEL))
    for old, new in (
        ("model_g2p_encryption_custody_log", "model_g2p_encryption_event"),
        ("field_g2p_encryption_custody_log__", "field_g2p_encryption_event__"),
        ("selection__g2p_encryption_custody_log__", "selection__g2p_encryption_event__"),
    ):
        cr.execute(
            """UPDATE ir_model_data SET name = %s || substr(name, %s)
               WHERE module = 'g2p_encryption' AND (name = %s OR name LIKE %s)""",
            (new, len(old) + 1, old, old.replace("_", r"\_") + "%"),
        )


# Views of the custody files that name buttons, fields or models that are gone: made again from
# the XML during the update, they would otherwise fail the validation of the views they extend.
OLD_VIEWS = (
    "encryption_provider_view_form_custody",
    "encryption_provider_view_tree_custody",
    "custody_log_view_tree",
    "custody_log_view_search",
    "custody_initialise_wizard_view_form",
    "custody_shares_wizard_view_form",
    "custody_unseal_wizard_view_form",
    "custody_rekey_wizard_view_form",
)


def drop_old_views(cr):
    cr.execute(
        """SELECT res_id FROM ir_model_data
            WHERE module = 'g2p_encryption' AND model = 'ir.ui.view' AND name IN %s""",
        (OLD_VIEWS,),
    )
    view_ids = tuple(row[0] for row in cr.fetchall())
    if view_ids:
        cr.execute("DELETE FROM ir_ui_view WHERE id IN %s", (view_ids,))
        cr.execute(
            """DELETE FROM ir_model_data
                WHERE module = 'g2p_encryption' AND model = 'ir.ui.view' AND name IN %s""",
            (OLD_VIEWS,),
        )


def migrate(cr, version):
    if not version:
        return
    drop_old_views(cr)
    rename_event_log(cr)
