# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Registrants (``res.partner`` with ``is_registrant``) and the contacts and addresses under them
(``g2p_in_registry``) are the records in scope.

Which fields are encrypted is the list of ``g2p.encrypted.field`` (Odoo's contact fields, and
OpenG2P's personal fields when its modules are installed); companies and ordinary contacts are
stored in the clear. A contact under a registrant is in scope too: Odoo copies the registrant's
address into it and its name into its ``complete_name`` ("Registrant, Contact"). A partner that
comes into scope has its values encrypted at once. Where a person may not read them, a registrant
is "Registrant #12" (a group "Group #12", a contact under one "Contact #12").
"""

import base64
import json

from lxml import etree

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.osv import expression
from odoo.tools import SQL
from odoo.tools.misc import clean_context
from odoo.tools.sql import column_exists, create_column

from .encryption_exits import ID_SLOT, person_not_allowed
from .mail import NAMED_AFTER

# The last count of the registry (``_g2p_count_registry``), for Settings: JSON, written by the
# server only (``ir.config_parameter._check_g2p_parameters``).
PARAM_COUNTS = "g2p_encryption.registry_counts"
COUNT_NAMES = ("registrants", "encrypted", "pending")


class ResPartner(models.Model):
    _inherit = "res.partner"

    # OpenG2P's g2p_registry_base defines the same field; either definition serves.
    is_registrant = fields.Boolean(string="Registrant", index=True)
    g2p_in_registry = fields.Boolean(
        string="Registry data",
        compute="_compute_g2p_in_registry",
        store=True,
        precompute=True,  # known when the row is inserted: it is inserted encrypted
        recursive=True,
        help="A registrant, or a contact or address under one: its personal fields are stored encrypted.",
    )
    g2p_national_id = fields.Char(
        string="National ID (exact)",
        compute="_compute_g2p_national_id",
        search="_search_g2p_national_id",
        help="Finds registrants by the exact value of one of their IDs (OpenG2P's registrant IDs).",
    )

    @api.depends("is_registrant", "parent_id.g2p_in_registry")
    def _compute_g2p_in_registry(self):
        for partner in self:
            partner.g2p_in_registry = partner.is_registrant or partner.parent_id.g2p_in_registry

    def _auto_init(self):
        # On a registry of millions, the new column is filled by one statement rather than
        # computed record by record by the ORM (which it does for a column it creates).
        cr = self.env.cr
        if column_exists(cr, self._table, "id") and not column_exists(cr, self._table, "g2p_in_registry"):
            create_column(cr, self._table, "g2p_in_registry", "boolean")
            if column_exists(cr, self._table, "is_registrant"):
                cr.execute(
                    """WITH RECURSIVE in_registry(id) AS (
                           SELECT id FROM res_partner WHERE is_registrant
                           UNION
                           SELECT child.id FROM res_partner child
                             JOIN in_registry ON child.parent_id = in_registry.id
                       )
                       UPDATE res_partner SET g2p_in_registry = true
                        WHERE id IN (SELECT id FROM in_registry)"""
                )
                if column_exists(cr, "res_users", "signature"):
                    self.env["res.users"]._g2p_forget_signatures()
        return super()._auto_init()

    def _compute_g2p_national_id(self):
        self.g2p_national_id = False  # a search criterion, never shown

    def _search_g2p_national_id(self, operator, value):
        if "g2p.reg.id" not in self.env or operator not in ("=", "ilike", "in") or not value:
            return [("id", "=", 0)]
        ids = self.env["g2p.reg.id"].search([("value", "in" if operator == "in" else "=", value)])
        return [("id", "in", ids.partner_id.ids)]

    @api.model
    def _get_view(self, view_id=None, view_type="form", **options):
        arch, view = super()._get_view(view_id, view_type, **options)
        if view_type == "search":
            self._g2p_add_exact_searches(arch)
        return arch, view

    def _g2p_exact_searches(self):
        """(field, label, filter domain) of the registrar's searches by exact value."""
        return [
            ("name", _("Full name (exact)"), "[('name', '=', self)]"),
            ("email", _("E-mail (exact)"), "[('email', '=', self)]"),
            ("phone", _("Phone (exact)"), "['|', ('phone', '=', self), ('mobile', '=', self)]"),
            ("g2p_national_id", _("National ID (exact)"), "[('g2p_national_id', '=', self)]"),
        ]

    def _g2p_add_exact_searches(self, arch):
        """Every search view of partners (Contacts, OpenG2P's registries) offers the exact searches,
        after its first field, to Registry Search members. Added to the combined view rather than
        by an inherited view: other modules' XPaths on ``//field[@name='phone']`` (``sms`` replaces
        it) would otherwise hit these fields."""
        first = arch.find("field")
        position = list(arch).index(first) + 1 if first is not None else 0
        for offset, (name, label, domain) in enumerate(self._g2p_exact_searches()):
            node = etree.Element(
                "field",
                name=name,
                string=label,
                filter_domain=domain,
                groups="g2p_encryption.registry_searcher",
            )
            arch.insert(position + offset, node)

    def _g2p_label_key(self):
        if not self.is_registrant:
            return "contact"
        return "group" if "is_group" in self._fields and self.is_group else "registrant"

    def _g2p_label_format(self):
        key = self._g2p_label_key()
        if key == "group":
            return _("Group #%(id)s", id=ID_SLOT)
        if key == "contact":
            return _("Contact #%(id)s", id=ID_SLOT)
        return _("Registrant #%(id)s", id=ID_SLOT)

    def unlink(self):
        # Deleting a registrant takes the contacts under it out of the registry (Odoo empties
        # their parent): refused to a person who may not read them, as the write would be.
        if not (self._g2p_encrypting() and person_not_allowed(self.env)):
            return super().unlink()
        children = (
            self.env["res.partner"]
            .sudo()
            .with_context(active_test=False)
            .search([("parent_id", "in", self.ids)])  # archived ones too (child_ids: active only)
            .with_env(self.env)
            - self
        )
        staying = children._g2p_may_leave_scope({"parent_id": False})
        result = super().unlink()
        staying._g2p_check_still_in_scope()
        return result

    def _write(self, vals):
        result = super()._write(vals)
        if vals.get("g2p_in_registry"):
            self.env["res.users"]._g2p_forget_signatures(self.ids)
        if vals.get("g2p_in_registry") and self._g2p_encrypting():
            # Values stored in the clear while the partner was out of scope are encrypted now.
            self._g2p_encrypt_in_place(flush=False)
            self._g2p_encrypt_dependents()
        return result

    def _g2p_encrypt_dependents(self):
        """Encrypt what other models store in the clear for these partners, now in scope: the
        records in scope through them (IDs, phone numbers, bank accounts: a scope path
        ``<many2one>.g2p_in_registry``) and the chatter's copies of their values."""
        for model_name in self.env["g2p.encryption.job"]._registry_models():
            model = self.env[model_name].sudo().with_context(active_test=False)
            path, _dot, rest = (model._g2p_scope_path or "").rpartition(".")
            if rest == "g2p_in_registry" and path and _stored_links_to(model, path) == self._name:
                model.search([(path, "in", self.ids)])._g2p_in_scope()._g2p_encrypt_in_place()
        # The chatter of the partners, of the records that delegate to them (a user's or an
        # OpenG2P program membership's scope is its partner's) and of the documents named after
        # them (``NAMED_AFTER``).
        documents = [(self._name, self.ids)]
        for model_name, model_class in self.env.registry.items():
            link = model_class._inherits.get(self._name)
            if link and not (model_class._abstract or model_class._transient) and model_class._auto:
                delegates = self.env[model_name].sudo().with_context(active_test=False)
                documents.append((model_name, delegates.search([(link, "in", self.ids)]).ids))
        for model_name, links in NAMED_AFTER.items():
            if model_name in self.env:
                named = self.env[model_name].sudo().with_context(active_test=False)
                named = named.search(expression.OR([[(link, "in", self.ids)] for link in links]))
                documents.append((model_name, named.ids))
        messages = (
            self.env["mail.message"]
            .sudo()
            .search(expression.OR([[("model", "=", name), ("res_id", "in", ids)] for name, ids in documents]))
        )
        activities = (
            self.env["mail.activity"]
            .sudo()
            .with_context(active_test=False)  # done activities kept archived too
            .search(
                expression.OR([[("res_model", "=", name), ("res_id", "in", ids)] for name, ids in documents])
            )
        )
        emails = self.env["mail.mail"].sudo().search([("mail_message_id", "in", messages.ids)])
        for copies in (messages, messages.tracking_value_ids, activities, emails):
            copies._g2p_in_scope()._g2p_encrypt_in_place()
        self.env["mail.message"]._g2p_forget_translations(messages)

    def _handle_first_contact_creation(self):
        # Odoo copies the address of a company's first contact up into the company when it has
        # none: not a registrant's (or its contact's) into a partner stored in the clear.
        if self.g2p_in_registry and not self.parent_id.g2p_in_registry:
            return None
        return super()._handle_first_contact_creation()

    def create_company(self):
        # Odoo's *Create company* button makes a company of the contact's company name with the
        # contact's address and tax ID, puts the contact under it, and moves the contact's own
        # contacts there too. A company is stored in the clear and is out of the registry: for a
        # registrant, the company gets neither its address nor its contacts; a contact under a
        # registrant is not taken out of the registry by it.
        self.ensure_one()
        if not (self.g2p_in_registry and self.company_name):
            return super().create_company()
        if not self.is_registrant:
            raise UserError(
                _("A contact of a registrant is not put under a company: it would leave the registry.")
            )
        if any(self[name] for name in self._commercial_fields() if name in self._g2p_encrypted):
            # Odoo copies them into the company, and back from it into the registrant.
            raise UserError(_("A registrant's encrypted values (its tax ID) are not copied into a company."))
        # Not as the registrant's form would make a partner (its default_* keys: a registrant):
        # the context without them replaces it.
        company = self.with_context(clean_context(self.env.context)).create(  # pylint: disable=context-overridden
            {"name": self.company_name, "is_company": True, "is_registrant": False, "vat": self.vat}
        )
        self.parent_id = company
        return True

    @api.model
    def _g2p_count_registry(self):
        """Count the registry (``_g2p_registry_counts``) and the records under each data key
        (``_records_by_key``), and keep the counts and their date for Settings and the keys'
        forms, which show them without reading the tables again: daily, after each registry job,
        and on *Count now*."""
        counts = dict(
            self._g2p_registry_counts(),
            keys=self.env["g2p.encryption.key"].sudo()._records_by_key(),
            counted_at=fields.Datetime.to_string(fields.Datetime.now()),
        )
        self.env["ir.config_parameter"].sudo().set_param(PARAM_COUNTS, json.dumps(counts))
        return counts

    @api.model
    def _g2p_last_registry_counts(self):
        """The counts of the last ``_g2p_count_registry``; {} before the first, or when the
        parameter does not hold what it writes (Settings must open whatever it holds)."""
        try:
            counts = json.loads(self.env["ir.config_parameter"].sudo().get_param(PARAM_COUNTS) or "{}")
            keys = counts.get("keys", {})  # {data key id: records under it}; none in older counts
            valid = (
                bool(fields.Datetime.to_datetime(counts["counted_at"]))
                and all(type(counts[name]) is int and counts[name] >= 0 for name in COUNT_NAMES)
                and type(keys) is dict
                and all(type(count) is int and count >= 0 for count in keys.values())
            )
        except Exception:  # noqa: BLE001 - any other content is no count
            return {}
        if not valid:
            return {}
        return dict({name: counts[name] for name in (*COUNT_NAMES, "counted_at")}, keys=keys)

    @api.model
    def _g2p_registry_counts(self):
        """{registrants, encrypted, pending}: registrants, those whose name is stored encrypted,
        and those with a value still stored in the clear (the encryption job's work, which also
        encrypts the contacts under them).

        It reads every registrant row: a few seconds per million registrants."""
        columns = [name for name in self._g2p_encrypted if self._fields[name].store]
        if not columns:
            self.env.cr.execute("SELECT count(*) FROM res_partner WHERE is_registrant")
            return {"registrants": self.env.cr.fetchone()[0], "encrypted": 0, "pending": 0}
        plain = SQL(" OR ").join(
            SQL(
                "(%s <> '' AND %s NOT LIKE %s AND %s NOT LIKE %s)",
                SQL.identifier(c),
                SQL.identifier(c),
                "g2pe%",
                SQL.identifier(c),
                "g2pkm%",
            )
            for c in columns
        )
        self.env.cr.execute(
            SQL(
                """SELECT count(*), count(*) FILTER (WHERE name LIKE %s), count(*) FILTER (WHERE %s)
                   FROM res_partner WHERE is_registrant""",
                "g2pe%",
                plain,
            )
        )
        registrants, encrypted, pending = self.env.cr.fetchone()
        return {"registrants": registrants, "encrypted": encrypted, "pending": pending}

    # Migration from OpenG2P's g2p_registry_encryption ----------------------------------------
    def _migrate_openg2p_blobs(self, legacy_provider):
        """Read the OpenG2P blobs of ``self`` with ``legacy_provider`` (KeyManager, direct mode,
        with the salt and aad OpenG2P's provider had) and store the values encrypted the way
        this module does; the blob is then cleared. Plaintext never reaches a column."""
        if not self:
            return
        self.flush_recordset()
        self.env.cr.execute("SELECT id, encrypted_val FROM res_partner WHERE id IN %s", (tuple(self.ids),))
        blobs = dict(self.env.cr.fetchall())
        names = [name for name in self._g2p_encrypted if self._fields[name].store]
        values_by_id = {}
        for record_id in self.ids:
            if not blobs.get(record_id):
                continue
            # A Binary column stores its value base64-encoded.
            raw = base64.b64decode(bytes(blobs[record_id]))
            try:
                values = json.loads(legacy_provider.sudo().decrypt_data(raw).decode())
            except ValueError as error:
                raise UserError(
                    _(
                        "The OpenG2P value of registrant %(id)s is not readable: %(error)s",
                        id=record_id,
                        error=error,
                    )
                ) from error
            values_by_id[record_id] = {name: values.get(name) or False for name in names if name in values}
        if values_by_id:
            self.browse(list(values_by_id))._g2p_store(values_by_id)
        self.env.cr.execute("UPDATE res_partner SET encrypted_val = NULL WHERE id IN %s", (tuple(self.ids),))
        self.invalidate_recordset()


def _stored_links_to(model, path):
    """The model a path of stored many2one fields leads to (``entitlement_id.partner_id``), or None."""
    for name in path.split("."):
        link = model._fields.get(name)
        if link is None or link.type != "many2one" or not link.store:
            return None
        model = model.env[link.comodel_name]
    return model._name
