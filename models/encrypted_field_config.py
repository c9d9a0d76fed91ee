# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Which fields of which models are encrypted: the admins' list.

Developers declare encrypted fields in code (``g2p.encrypted.mixin``); admins add fields of any
model here (a stored character, text or HTML field, with the kind of blind index it gets, if any). The
defaults cover Odoo's contact fields and, when OpenG2P's registry modules are installed, their
personal fields; a default whose model or field is not installed waits, inactive in effect, until
it is. Rows marked *derived* are stored fields computed from an encrypted field, found from the
registry's field dependencies and protected the same way.

The list shapes the registry (each listed field becomes an encrypted field at set-up), so a
change reloads the registry of every worker.
"""

import logging
from collections import namedtuple

from odoo import _, api, fields, models, tools
from odoo.exceptions import ValidationError

from ..core.blind_index import DIGEST_BITS, KINDS, MIN_BITS
from .encryption_exits import wrap_external_value_methods

_logger = logging.getLogger(__name__)

FieldSpec = namedtuple("FieldSpec", "index_kind names_record scope index_bits index_lengths")

# (model, field, blind-index kind, names the record, scope: records whose values are encrypted)
DEFAULT_FIELDS = (
    ("res.partner", "name", "text", True, "g2p_in_registry"),
    ("res.partner", "email", "email", False, "g2p_in_registry"),
    ("res.partner", "phone", "phone", False, "g2p_in_registry"),
    ("res.partner", "mobile", "phone", False, "g2p_in_registry"),
    ("res.partner", "street", None, False, "g2p_in_registry"),
    ("res.partner", "street2", None, False, "g2p_in_registry"),
    ("res.partner", "city", None, False, "g2p_in_registry"),
    ("res.partner", "zip", None, False, "g2p_in_registry"),
    # OpenG2P registry (g2p_registry_base, g2p_registry_individual, g2p_bank)
    ("res.partner", "given_name", "text", False, "g2p_in_registry"),
    ("res.partner", "family_name", "text", False, "g2p_in_registry"),
    ("res.partner", "addl_name", None, False, "g2p_in_registry"),
    ("res.partner", "birth_place", None, False, "g2p_in_registry"),
    ("res.partner", "address", None, False, "g2p_in_registry"),
    ("g2p.reg.id", "value", "identifier", False, "partner_id.g2p_in_registry"),
    ("g2p.phone.number", "phone_no", "phone", False, "partner_id.g2p_in_registry"),
    ("res.partner.bank", "acc_number", "identifier", False, "partner_id.g2p_in_registry"),
    # Odoo computes the holder's name from the partner, declaring a dependency on partner_id only
    # (not on its name): the scan of derived fields cannot find it.
    ("res.partner.bank", "acc_holder_name", None, False, "partner_id.g2p_in_registry"),
    # OpenG2P copies the account number of a beneficiary into each payment (g2p_programs).
    ("g2p.payment", "account_number", "identifier", False, "entitlement_id.partner_id.g2p_in_registry"),
    # Stored fields computed from the ones above; found again from the dependencies at each
    # registry load, listed here for the blind index they get.
    ("res.partner", "complete_name", "text", True, "g2p_in_registry"),
    ("res.partner", "email_normalized", "email", False, "g2p_in_registry"),
    ("res.partner", "phone_sanitized", "phone", False, "g2p_in_registry"),
    ("g2p.phone.number", "phone_sanitized", "phone", False, "partner_id.g2p_in_registry"),
    ("res.partner.bank", "sanitized_acc_number", "identifier", False, "partner_id.g2p_in_registry"),
)


class EncryptedFieldConfig(models.Model):
    _name = "g2p.encrypted.field"
    _description = "Encrypted Field"
    _order = "model_name, sequence, id"
    _rec_name = "field_name"

    sequence = fields.Integer(default=10)
    model_name = fields.Char(string="Model", required=True, index=True)
    field_name = fields.Char(string="Field", required=True)
    index_kind = fields.Selection(
        [(kind, kind.capitalize()) for kind in KINDS],
        string="Blind index",
        help="Exact searches (=, in, and ilike of a whole value) find the field through a keyed hash "
        "of its normalised value. Empty: the field cannot be searched.",
    )
    index_bits = fields.Integer(
        string="Index bits",
        default=DIGEST_BITS,
        help="Bits of the keyed hash kept in the blind index (a multiple of 4, 8 to 256). Fewer bits: "
        "many values share each digest, so a stolen database cannot prove that two people share a "
        "value; searches then check their candidates by decrypting them. See the README for the "
        "figures. Rows already written keep their length until the index is rebuilt.",
    )
    index_bits_used = fields.Char(
        readonly=True, help="Every length the index of this field has been written with (searched too)."
    )
    names_record = fields.Boolean(
        help="The field names the record (a name): where a person may not read it, it shows a "
        "pseudonymous label (Registrant #12) instead of the mask."
    )
    scope = fields.Char(
        help="Field path that tells which records are encrypted (g2p_in_registry: registrants "
        "and the contacts under them; partner_id.g2p_in_registry). Empty: all records of the model."
    )
    origin = fields.Selection(
        [("default", "Default"), ("admin", "Added by an admin"), ("derived", "Derived (computed)")],
        default="admin",
        required=True,
        readonly=True,
    )
    active = fields.Boolean(default=True)
    state = fields.Selection(
        [("active", "Encrypted"), ("waiting", "Model or field not installed"), ("invalid", "Invalid")],
        compute="_compute_state",
    )

    _sql_constraints = [
        ("model_field_unique", "unique(model_name, field_name)", "A field is listed once."),
    ]

    def _compute_state(self):
        for config in self:
            model = self.env.get(config.model_name)
            field = model._fields.get(config.field_name) if model is not None else None
            if field is None:
                config.state = "waiting"
            elif getattr(field, "g2p_encrypted", False):
                config.state = "active"
            else:
                config.state = "invalid"

    @api.constrains("index_bits")
    def _check_index_bits(self):
        for config in self:
            if config.index_bits % 4 or not MIN_BITS <= config.index_bits <= DIGEST_BITS:
                raise ValidationError(
                    _(
                        "A blind index keeps a multiple of 4 bits between %(min)s and %(max)s.",
                        min=MIN_BITS,
                        max=DIGEST_BITS,
                    )
                )

    @api.constrains("model_name", "field_name", "index_kind", "scope")
    def _check_field(self):
        for config in self:
            model = self.env.get(config.model_name)
            if model is None or config.field_name not in model._fields:
                continue  # waits for its module (the list shows it as waiting)
            problem = field_problem(model, config.field_name)
            if problem:
                raise ValidationError(problem)

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self._registry_changed()
        return records

    def write(self, vals):
        if "index_bits" in vals:
            for config in self:
                used = set(config._lengths_used()) | {int(vals["index_bits"])}
                super(EncryptedFieldConfig, config).write(
                    {"index_bits_used": ",".join(map(str, sorted(used)))}
                )
        result = super().write(vals)
        self._registry_changed()
        return result

    def _lengths_used(self):
        used = {int(bits) for bits in (self.index_bits_used or "").split(",") if bits}
        return sorted(used | {self.index_bits or DIGEST_BITS})

    def unlink(self):
        result = super().unlink()
        self._registry_changed()
        return result

    def _registry_changed(self):
        """Set up the registry again with the new list, here and in every other worker.

        While modules load, the loading sets the registry up anyway: nothing to do then."""
        registry = self.env.registry
        if not registry.ready:
            return
        self.env.flush_all()
        registry.setup_models(self.env.cr)  # runs _register_hook, hence _protect_derived_fields
        registry.registry_invalidated = True

    # Derived fields ------------------------------------------------------------------------------
    def _register_hook(self):
        # The addon's registry-wide work: this model's own hook runs whatever the hooks of other
        # models do (res.users' does not call super, for one).
        super()._register_hook()
        wrap_external_value_methods(self.env.registry)
        self._protect_derived_fields()
        self._link_openg2p_groups()

    @api.model
    def _link_openg2p_groups(self):
        """OpenG2P's registrars find people by exact values: their group implies Registry Search."""
        registrar = self.env.ref("g2p_registry_base.group_g2p_registrar", raise_if_not_found=False)
        searcher = self.env.ref("g2p_encryption.registry_searcher", raise_if_not_found=False)
        if registrar and searcher and searcher not in registrar.implied_ids:
            registrar.sudo().implied_ids = [fields.Command.link(searcher.id)]

    @api.model
    def _protect_derived_fields(self):
        """Find, from the registry's field dependencies, the fields computed from encrypted ones.

        A stored character or text field of the same model is listed (origin *derived*) and the
        registry set up again: it is encrypted from then on. Any other stored one is reported
        (log and the *Derived fields* report), unless its model keeps it out of scope itself
        (``_g2p_derived_kept_out``). Non-stored ones are recomputed on each side of an exit
        (``encryption_exits``), with every model's display name.

        Returns the fields it listed: [(model, field, scope)].
        """
        registry = self.env.registry
        listed = set()
        if tools.sql.table_exists(self.env.cr, self._table):
            self.env.cr.execute("SELECT model_name, field_name FROM g2p_encrypted_field")
            listed = set(self.env.cr.fetchall())
        to_list, unprotected, exit_derived = [], [], set()
        for model_name in registry.models:
            model = self.env[model_name]
            if "display_name" in model._fields:
                exit_derived.add(model._fields["display_name"])
            kept_out = getattr(model, "_g2p_derived_kept_out", ())
            for field in model._fields.values():
                if _is_encrypted(field) or not (field.compute or field.related) or field.name in kept_out:
                    continue
                if not any(map(_is_encrypted, _dependencies(registry, field))):
                    continue
                if not field.store:
                    exit_derived.add(field)
                    continue
                if field.type not in ("char", "text"):
                    unprotected.append(f"{model_name}.{field.name}")
                    continue
                scope = _derived_scope(registry, model, field)
                if (
                    scope is not False
                    and not field_problem(model, field.name)
                    and (model_name, field.name) not in listed
                ):
                    to_list.append((model_name, field.name, scope))
                else:
                    unprotected.append(f"{model_name}.{field.name}")
        registry.g2p_exit_derived = tuple(exit_derived)
        unprotected = tuple(sorted(unprotected))
        if unprotected != registry.__dict__.get("g2p_unprotected_derived"):
            registry.g2p_unprotected_derived = unprotected
            self._report_unprotected(unprotected)
        if to_list and listed is not None and tools.sql.table_exists(self.env.cr, self._table):
            for model_name, field_name, scope in to_list:
                self.env.cr.execute(
                    """INSERT INTO g2p_encrypted_field
                           (model_name, field_name, scope, origin, active, sequence, names_record)
                       VALUES (%s, %s, %s, 'derived', TRUE, 50, FALSE)
                       ON CONFLICT (model_name, field_name) DO NOTHING""",
                    (model_name, field_name, scope),
                )
            _logger.info(
                "Encrypting stored fields computed from encrypted fields: %s",
                ", ".join(f"{model}.{field}" for model, field, _scope in to_list),
            )
            if registry.ready:
                self._registry_changed()
            else:
                # At the end of the loading of modules (hooks run before the registry is ready).
                registry.setup_models(self.env.cr)
                registry.registry_invalidated = True
                return to_list + self._protect_derived_fields()
        return to_list

    @api.model
    def _report_unprotected(self, names):
        """Say which stored fields computed from encrypted ones stay in the clear: text is a
        warning (it copies personal data), other types (a flag, a number) a note."""
        registry = self.env.registry
        texts, others = [], []
        for name in names:
            model_name, field_name = name.rsplit(".", 1)
            field = registry[model_name]._fields[field_name]
            # A wizard's rows are deleted by the vacuum within the hour (Odoo's auth_totp.wizard
            # shows the company's name in the URL of a new second factor).
            kept = field.type in ("char", "text", "html") and not registry[model_name]._transient
            (texts if kept else others).append(name)
        if texts:
            _logger.warning(
                "Stored fields computed from encrypted fields hold plaintext of registrants: %s. "
                "List them in Encryption ‣ Encrypted Fields (with a scope) to encrypt them.",
                ", ".join(texts),
            )
        if others:
            _logger.info(
                "Stored fields computed from encrypted fields, not text or of wizards, left in the "
                "clear: %s.",
                ", ".join(others),
            )

    @api.model
    def _install_defaults(self):
        """Create the default rows that do not exist yet (install, and each upgrade)."""
        self.env.cr.execute("SELECT model_name, field_name FROM g2p_encrypted_field")
        existing = set(self.env.cr.fetchall())
        missing = [
            {
                "model_name": model_name,
                "field_name": field_name,
                "index_kind": kind,
                "names_record": names_record,
                "scope": scope,
                "origin": "default",
            }
            for model_name, field_name, kind, names_record, scope in DEFAULT_FIELDS
            if (model_name, field_name) not in existing
        ]
        # super(): the registry is set up again once the module is installed, not row by row.
        return super().create(missing) if missing else self.browse()


def field_problem(model, field_name):
    """Why ``field_name`` of ``model`` cannot be encrypted, or None."""
    field = model._fields.get(field_name)
    if field is None:
        return _("%(model)s has no field %(field)s.", model=model._name, field=field_name)
    if field.type not in ("char", "text", "html") or not field.store or field.translate:
        return _(
            "%(model)s.%(field)s cannot be encrypted: only stored, untranslated character, text "
            "and HTML fields can.",
            model=model._name,
            field=field_name,
        )
    return None


def load_specs(cr):
    """{model: {field: FieldSpec}} of the listed, active fields (the defaults before install)."""
    if not tools.sql.column_exists(cr, "g2p_encrypted_field", "index_bits"):
        rows = [(*row, DIGEST_BITS, "") for row in DEFAULT_FIELDS]  # before the module's tables exist
    else:
        cr.execute(
            """SELECT model_name, field_name, index_kind, names_record, scope, index_bits, index_bits_used
               FROM g2p_encrypted_field WHERE active ORDER BY model_name, sequence, id"""
        )
        rows = cr.fetchall()
    specs = {}
    for model_name, field_name, kind, names_record, scope, bits, used in rows:
        bits = bits or DIGEST_BITS
        lengths = tuple(sorted({bits, *(int(b) for b in (used or "").split(",") if b)}))
        specs.setdefault(model_name, {})[field_name] = FieldSpec(
            kind or None, bool(names_record), scope or None, bits, lengths
        )
    return specs


def _dependencies(registry, field, seen=None):
    """Every field on the dependency paths of ``field``, and on those of the non-stored computed
    or related fields among them, at any depth (never raises on a wrong path).

    A stored field computed from a partner's display name (``account.move``'s
    ``invoice_partner_display_name``) depends on no encrypted field directly: on ``display_name``,
    computed (not stored) from the encrypted ``complete_name``."""
    seen = set() if seen is None else seen
    for path in registry.field_depends.get(field, ()):
        yield from _path_dependencies(registry, registry.get(field.model_name), path, seen)


def _path_dependencies(registry, model, path, seen):
    """The fields of one dependency ``path`` from ``model``, followed as ``_dependencies`` does."""
    for name in path.split("."):
        dependency = model._fields.get(name) if model is not None else None
        if dependency is None:
            break
        if dependency not in seen:
            seen.add(dependency)
            yield dependency
            if not dependency.store and (dependency.compute or dependency.related):
                yield from _dependencies(registry, dependency, seen)
        model = registry.get(dependency.comodel_name) if dependency.relational else None


def _is_encrypted(field):
    return getattr(field, "g2p_encrypted", False)


def _derived_scope(registry, model, field):
    """The scope of a stored field computed from encrypted fields, or False when unknown.

    On the model of its sources it is the model's own scope, when its values come from the record
    itself or through the many2one its scope goes through (``partner_id`` on ``res.company``;
    anything on res.partner, whose scope passes to the contacts under a registrant). On another
    model, a field reached through one many2one to a model with encrypted fields (a related
    field, or a compute such as calendar.attendee.common_name from partner_id.name) is in scope
    when the record it points to is. Unknown when encrypted values come by any other way."""
    scope = model._g2p_scope_path if model._g2p_encrypted else None
    links = set()
    for first in _source_links(registry, model, _own_paths(registry, field), set()):
        if first is not None and first.type == "many2one" and registry[first.comodel_name]._g2p_encrypted:
            links.add(first)
        elif not (model._g2p_encrypted and first is not None and first.store and not first.relational):
            return False
    if model._g2p_encrypted:
        via = scope.split(".")[0] if scope and "." in scope else None
        return scope if via is None or all(link.name == via for link in links) else False
    if len(links) != 1:
        return False
    link = links.pop()
    scope = registry[link.comodel_name]._g2p_scope_path
    return f"{link.name}.{scope}" if scope else None


def _own_paths(registry, field):
    return [field.related] if field.related else registry.field_depends.get(field, ())


def _source_links(registry, model, paths, seen):
    """The first fields of the ``paths`` (from ``model``) through which encrypted values come;
    a first field neither stored nor a many2one (``calendar.attendee.email``, related to
    ``partner_id.email``) stands for the first fields of its own paths."""
    for path in paths:
        if not any(map(_is_encrypted, _path_dependencies(registry, model, path, set()))):
            continue
        first = model._fields.get(path.split(".")[0])
        if first is not None and not first.store and first.type != "many2one" and first not in seen:
            seen.add(first)
            yield from _source_links(registry, model, _own_paths(registry, first), seen)
        else:
            yield first
