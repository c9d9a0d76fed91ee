# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The exits: where values leave the server towards a person, and are gated there.

Inside the server every module reads plaintext. What a *person* receives (the answer to an RPC
read of any kind, name search and many2one display names, onchange answers, exports, chatter,
reports printed from the web client) goes through an **exit**: while one is open on the
transaction, encrypted values of records in scope reach the person only when the policy allows
it (Crypto Admin, or the group chosen in Settings, while "Decrypt registry" is on), and are then
audited; everyone else gets the mask, or a pseudonymous label for fields that name the record.
A masked exit decrypts nothing, so it works while a provider is sealed or KeyManager is down.

The exit's state lives on the transaction, never in the context: an RPC client can send any
context key, it cannot reach ``env.transaction``. Computed values that may carry plaintext
(display names, non-stored computes of encrypted fields) are dropped from the cache when an exit
opens and when it closes, so that neither side sees the other's.
"""

import contextlib
import functools
import threading

from odoo import _, api, http, models
from odoo.exceptions import AccessError, MissingError, UserError
from odoo.models import PREFETCH_MAX
from odoo.modules.registry import Registry
from odoo.osv import expression
from odoo.tools import SQL

from ..core.redaction import SeenValues
from .encrypted_field import EXTERNAL_API, AtRest, Masked, Shown, Unreadable, open_for_read

PARAM_ENCRYPT = "g2p_encryption.encrypt_registry"
PARAM_DECRYPT = "g2p_encryption.decrypt_registry"
PARAM_READER_GROUP = "g2p_encryption.plaintext_group_id"
DEFAULT_READER_GROUP = "g2p_encryption.crypto_admin"
# Set on the thread while it serves the external API (XML-RPC, /jsonrpc): a person, or a program
# acting for one, authenticated by its credentials. Odoo hides the request from the ORM there.
ID_SLOT = "\x00id\x00"  # where a label's record id goes (labels are translated once per exit)
# Public methods that hand out values without being exits (``wrap_external_value_methods``);
# name_get is deprecated since 17.0, still callable over RPC: it hands out display names.
EXTERNAL_VALUE_METHODS = ("mapped", "copy_data", "copy", "default_get", "name_get", "onchange")
# The same, of some models only: calendar's details of a meeting's attendees (the calendar view,
# the attendees widget) are partners' display names, with address and e-mail when the context
# asks.
MODULE_VALUE_METHODS = ("get_attendee_detail",)
VALUE_METHODS = frozenset(EXTERNAL_VALUE_METHODS + MODULE_VALUE_METHODS)
# Public methods of every model that group, order or pick records by their values in the server
# (decrypted): over RPC they would answer what a value is, or how values compare, with no cap
# and no log. The web client never calls them; a person's call is refused.
RECORDSET_METHODS = frozenset({"grouped", "sorted", "filtered", "filtered_domain"})


def refuse_recordset_method(model, method):
    """Refuse a person's RPC call of one of ``RECORDSET_METHODS``."""
    if method in RECORDSET_METHODS:
        raise AccessError(
            _(
                "%(method)s of %(model)s cannot be called over RPC: it compares records by their "
                "values in the server, decrypted.",
                method=method,
                model=model,
            )
        )


# The RPC calls of a wizard model by which a person makes or changes a wizard (Base.create).
WIZARD_WRITE_METHODS = frozenset({"create", "write", "web_save"})


def refuse_others_wizards(records):
    """Refuse a person who may not read plaintext the wizards of another user among ``records``.

    A wizard holds what Odoo copied into it from its records: one that such a person makes over
    RPC is made of masks (``Base.create``), another user's may hold plaintext. Odoo 17 keeps
    wizards to their maker only where a model has a rule of its own (the composer has one, the
    invitation to follow none); for such a person they are kept to theirs here, as Odoo 16 kept
    them for everyone: their reads (``_search``, which ``fetch`` goes through), writes and
    deletions (``check_access_rule``)."""
    if not (records._transient and records._ids and person_not_allowed(records.env)):
        return
    ids = [rid for rid in records._ids if isinstance(rid, int)]  # not a new record's
    if not ids:
        return
    records.env.cr.execute(
        SQL(
            "SELECT 1 FROM %s WHERE id = ANY(%s) AND create_uid IS DISTINCT FROM %s LIMIT 1",
            SQL.identifier(records._table),
            ids,
            records.env.uid,
        )
    )
    if records.env.cr.fetchone():
        raise AccessError(
            _(
                "Only the user who opened this %(model)s may use it: it may hold registry data "
                "that you may not read.",
                model=records._description,
            )
        )


class ExitState:
    """What one exit lets through, and what it let through (for the decryption log)."""

    def __init__(self, allowed, encrypting, entry_point):
        self.allowed = allowed
        self.encrypting = encrypting
        self.entry_point = entry_point
        self.exposed = {}  # {model: ({fields}, {record ids})}
        self._scope = {}
        self._masks = {}  # {(model, names the record): translated mask or label format}, per exit

    def protected(self, field, record, value):
        """Whether ``value`` of ``field`` on ``record`` is personal data the exit guards."""
        if isinstance(value, AtRest | Unreadable):
            return True
        record_id = record.id
        if not record_id or not self.encrypting:
            # A record being created in a form: its values are what the person typed. And while
            # the registry is not encrypted, only values that were encrypted are guarded.
            return False
        key = (record._name, getattr(record_id, "origin", None) or record_id)
        in_scope = self._scope.get(key)
        if in_scope is None:
            in_scope = self._scope[key] = self._look_up_scope(record)
        return in_scope

    def _look_up_scope(self, record):
        """Whether ``record`` is in scope; the records prefetched with it (a list's rows, a
        chatter's tracking values) are looked up in the same pass, one query for them all
        rather than one per record."""
        record_id = record.id
        if type(record_id) is not int:  # a record being edited: its scope follows its edits
            return bool(record._g2p_in_scope())
        ids = [
            rid for rid in record._prefetch_ids if type(rid) is int and (record._name, rid) not in self._scope
        ][:PREFETCH_MAX]
        if record_id not in ids:
            ids.append(record_id)
        try:
            in_scope = set(record.sudo().browse(ids)._g2p_in_scope()._ids)
        except MissingError:  # one of them deleted meanwhile: this record alone
            return bool(record._g2p_in_scope())
        for rid in ids:
            self._scope[(record._name, rid)] = rid in in_scope
        return record_id in in_scope

    def masks(self, field, record, value):
        return not self.allowed and self.protected(field, record, value)

    def gate(self, field, record, value):
        # Runs once per value that leaves (8,000 in a list of 1,000 registrants): values from
        # storage are told apart by their exact type first.
        kind = type(value)
        if kind is not AtRest and kind is not Unreadable:
            if kind is Masked or not isinstance(value, str) or not self.protected(field, record, value):
                return value
        if not self.allowed:
            return self.mask(field, record)
        exposed = self.exposed.get(record._name)
        if exposed is None:
            exposed = self.exposed[record._name] = (set(), set())
        exposed[0].add(field.name)
        record_id = record._ids[0]
        exposed[1].add(getattr(record_id, "origin", None) or record_id)
        return Shown(value) if kind is AtRest else value

    def mask(self, field, record):
        # Translated once per exit, model and kind of label, not once per value: a list of 1,000
        # registrants holds 8,000 masks, and each _() looks its module and language up.
        if not field.g2p_names_record:
            key = (record._name, "mask")
            text = self._masks.get(key) or self._masks.setdefault(key, record._g2p_mask_text())
            return Masked(text)
        key = (record._name, "label", record._g2p_label_key())
        text = self._masks.get(key) or self._masks.setdefault(key, record._g2p_label_format())
        return Masked(text.replace(ID_SLOT, str(getattr(record.id, "origin", None) or record.id)))


def may_be_in_scope(model):
    """Whether records of ``model`` can be in scope: it has encrypted fields, or delegates to a
    model that may (``_inherits``)."""
    return bool(model._g2p_encrypted) or any(may_be_in_scope(model.env[parent]) for parent in model._inherits)


def serves_wizard_write(records):
    """Whether a create or write of ``records`` (a wizard model's) is the very call a person made
    over RPC (``WIZARD_WRITE_METHODS``), not server code's (a composer a button makes to send a
    templated e-mail must render the real values)."""
    call = serving_external_api()
    if call is not None:
        return call.model == records._name and call.method in WIZARD_WRITE_METHODS and not call.running
    return records.env.transaction.__dict__.get("g2p_served_wizard") == records._name


def holds_own_values(model):
    """Whether records of ``model`` (or those it delegates to) hold encrypted values of their
    own: not only values computed from other records' (an invoice's customer name), which a copy
    or a change of the record computes again under its own scope."""
    fields = model._fields
    return any(not (fields[name].compute or fields[name].related) for name in model._g2p_encrypted) or any(
        holds_own_values(model.env[parent]) for parent in model._inherits
    )


def reader_allowed(env):
    """Whether the user of ``env`` may read plaintext at an exit (the policy)."""
    params = env["ir.config_parameter"].sudo()
    if not params.get_param(PARAM_DECRYPT):
        return False
    group_id = params.get_param(PARAM_READER_GROUP)
    group = env["res.groups"].sudo().browse(int(group_id)).exists() if group_id else None
    if not group:
        # Every exit asks: Odoo's cached answer, no query (env.ref would check the group exists).
        return env.user.has_group(DEFAULT_READER_GROUP)
    return group in env.user.sudo().groups_id


def person_not_allowed(env):
    """Whether ``env`` serves a person (``person_request``) who may not read plaintext: what such
    a person's request would store or hand out is refused, masked or struck out."""
    return person_request(env) and not reader_allowed(env)


# ``env.transaction.g2p_person_search``: what a person's request looks up by value: a search
# method's domain (True), what the composer and Discuss suggest as the person types (SUGGESTIONS),
# or addresses typed as recipients (TYPED_ADDRESSES, in the block of ``typed_addresses``).
SUGGESTIONS = "suggestions"
TYPED_ADDRESSES = "typed addresses"
EXPORT_PATHS = ("/web/export/",)


def person_search(env):
    """Whether an exact-value lookup now comes from a person's search (capped and logged), not
    from server code: a search method called over the web client's RPC, addresses typed into a
    composer (``typed_addresses``), or the external API."""
    if not person_request(env):
        return False
    return bool(person_search_kind(env)) or serving_external_api() is not None


def person_search_kind(env):
    """What a person's request looks up now (``g2p_person_search``), None when nothing."""
    return env.transaction.__dict__.get("g2p_person_search")


@contextlib.contextmanager
def typed_addresses(env):
    """Look up the e-mail addresses a person typed into a composer as a person's search: capped
    and logged for Registry Search members; for others they find only partners stored in the
    clear (a registrant's address makes a new contact), so an address never tells whose it is."""
    transaction = env.transaction
    before = transaction.__dict__.get("g2p_person_search")
    transaction.g2p_person_search = before or TYPED_ADDRESSES
    try:
        yield
    finally:
        if before is None:
            transaction.__dict__.pop("g2p_person_search", None)
        else:
            transaction.g2p_person_search = before


def person_request(env):
    """Whether ``env`` serves a person over HTTP (not server code in sudo, not a cron or job)."""
    if env.su:
        return False
    if serving_external_api() is not None:
        return bool(env.uid)  # whoever gave the credentials
    request = http.request  # a proxy: false outside a request
    if not request or not getattr(request, "db", None):
        return False
    session_uid = request.session.uid if request.session else None
    return bool(session_uid) and session_uid == env.uid


class ExternalCall:
    """The external API call a thread serves: the ORM method it invokes, if any, and whether that
    method runs now."""

    def __init__(self, model=None, method=None):
        self.model = model
        self.method = method
        self.running = False
        self.seen = SeenValues()  # what server code decrypts during the call (strike_out)

    def invokes(self, records, method):
        """Whether ``method`` of ``records``, called now, is the very call served (not server code
        calling the method meanwhile)."""
        return not self.running and method == self.method and records._name == self.model

    @contextlib.contextmanager
    def run_in_exit(self, records):
        """The served call, run inside an exit as the web client's call of it is."""
        self.running = True  # until it returns: its own calls of the method are server code's
        try:
            if not person_request(records.env):
                yield
                return
            with exit_for(records.env, f"{records._name}.{self.method}"):
                yield
        finally:
            self.running = False


def _in_external_exit(name, method):
    """``method`` (the method ``name`` of a model) that runs inside an exit when it is the very
    call the external API serves. (``mapped`` is everywhere: one attribute test when no external
    call is served.)"""

    @functools.wraps(method)
    def in_exit(self, *args, **kwargs):
        call = serving_external_api()
        if call is None or not call.invokes(self, name):
            return method(self, *args, **kwargs)
        with call.run_in_exit(self):
            return method(self, *args, **kwargs)

    in_exit.g2p_external_exit = in_exit  # itself: a wrapper of it copies another function
    return in_exit


def wrap_external_value_methods(registry):
    """Wrap the public methods that hand out values without being exits on every model's class,
    above every module's override (the first one found on the class): the web client's calls
    of them run inside an exit (controllers/exits.py), and so do the external API's, the whole
    call. Run by ``g2p.encrypted.field``'s registry hook, again when the registry is set up again:
    a method already wrapped stays as is."""
    for model_class in registry.models.values():
        for name in VALUE_METHODS:
            method = getattr(model_class, name, None)
            if method is not None and not is_external_exit(method):
                setattr(model_class, name, _in_external_exit(name, method))


def is_external_exit(method):
    """Whether ``method`` is a wrapper of ``_in_external_exit`` (not a copy of its attributes by
    another wrapper's ``functools.wraps``)."""
    return method is not None and getattr(method, "g2p_external_exit", None) is method


def serving_external_api():
    """The ``ExternalCall`` this thread serves now (``external_api``), or None."""
    return getattr(threading.current_thread(), EXTERNAL_API, None)


@contextlib.contextmanager
def external_api(model=None, method=None):
    """Mark the thread as serving the external API for the duration of the block (a call of
    ``method`` of ``model``, for the object service): Odoo runs its calls without the request
    (``http.borrow_request``), so the ORM cannot tell them otherwise."""
    thread = threading.current_thread()
    call = ExternalCall(model, method)
    setattr(thread, EXTERNAL_API, call)
    try:
        yield call
    finally:
        setattr(thread, EXTERNAL_API, None)


def scan_external_answer(dbname, uid, entry_point, result):
    """``scan_result`` of the answer of an external API call, or ``result`` itself when it holds
    no stored value. Odoo has committed and closed the call's transaction by then: the policy is
    read, and a row logged, in one of its own, before the answer leaves."""
    if not holds_stored(result):
        return result
    with Registry(dbname).cursor() as cr:
        env = api.Environment(cr, uid, {})
        # The masks in the user's language, as the call's own answer.
        return scan_result(env(context=env["res.users"].context_get()), result, entry_point)


def holds_stored(value):
    """Whether ``value`` (an answer) holds a value from storage that no exit let through, in any
    list, tuple or dict."""
    if isinstance(value, AtRest | Unreadable):
        return not isinstance(value, Masked | Shown)
    if isinstance(value, dict):
        return any(holds_stored(key) or holds_stored(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(map(holds_stored, value))
    return False


@contextlib.contextmanager
def exit_for(env, entry_point, allowed=None):
    """Open an exit on ``env``'s transaction for the duration of the block (once: nested exits
    are part of the outer one). Yields the ``ExitState``, or None when one was already open.
    ``allowed``: whether plaintext may pass; the policy for ``env``'s user decides when None. A
    masked exit (``allowed=False``) inside one that lets plaintext through masks for its block (a
    message posted while a Crypto Admin's exit is open goes to inboxes masked all the same)."""
    transaction = env.transaction
    outer = transaction.__dict__.get("g2p_exit")
    if outer is not None and not (allowed is False and outer.allowed):
        yield None
        return
    # Pending computations run before the exit opens: a stored value computed while values are
    # masked would store the mask.
    env.flush_all()
    encrypting = bool(env["ir.config_parameter"].sudo().get_param(PARAM_ENCRYPT))
    request = http.request
    if allowed is None:
        allowed = reader_allowed(env)
    state = ExitState(allowed, encrypting, request.httprequest.path if request else entry_point)
    _drop_derived(env)
    transaction.g2p_exit = state
    try:
        yield state
    finally:
        transaction.g2p_exit = outer
        _drop_derived(env)
    if state.exposed:
        env["g2p.decryption.log"]._log_exposed(state)


def _drop_derived(env):
    """Drop cached computed values that may derive from encrypted fields (display names...)."""
    derived = env.registry.__dict__.get("g2p_exit_derived", ())
    if derived:
        env.cache.invalidate([(field, None) for field in derived])


def scan_result(env, result, entry_point):
    """Mask (or audit) plaintext from storage found in the answer of any other public method.

    A method that returns ``record.name`` hands out an ``AtRest`` string: it is masked for a
    person the policy does not allow, and counted in a row of the decryption log for one it
    allows, unless an exit let it through (``Shown``: the exit's row names it). Values derived by
    string operations are not recognisable here; the read methods are exits of their own for that
    reason.
    """
    allowed = None
    found = 0

    def walk(value):
        nonlocal allowed, found
        if isinstance(value, AtRest | Unreadable) and not isinstance(value, Masked):
            if allowed is None:
                allowed = reader_allowed(env)
            if not allowed:
                return Masked(_("[encrypted]"))
            found += type(value) is not Shown
            return value
        if isinstance(value, dict):  # keys too: a value may key a dict of records
            return {walk(key): walk(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(walk(item) for item in value)
        return value

    scanned = walk(result)
    if found and allowed:
        env["g2p.decryption.log"]._log_values(entry_point, found)
    return scanned


def _compute_wizards(env):
    """Compute the wizards' stored fields waiting to be, inside the masked exit that made them
    (``Base.create``); other models' are computed after it, from real values."""
    for field in list(env.fields_to_compute()):
        if env[field.model_name]._transient:
            env[field.model_name]._recompute_field(field)


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _dispatch(cls, endpoint):
        request = http.request
        person = person_request(request.env)
        if person and request.httprequest.path.startswith(EXPORT_PATHS):
            # An export of the records a domain finds (``/web/export/csv``, ``xlsx``): the
            # person's domain, looked up as a search method's is (capped and logged).
            request.env.transaction.g2p_person_search = True
        seen = None
        if person and person_not_allowed(request.env):
            # What server code decrypts meanwhile, to strike it out of an error message.
            seen = request.env.transaction.g2p_seen_plaintexts = SeenValues()
        try:
            result = super()._dispatch(endpoint)
        except Exception as error:
            if seen:
                strike_out(error, seen)
            raise
        # The answer of a JSON route (call_kw, the chatter's, any module's) to a person: stored
        # plaintext that no exit let through is masked or counted here.
        if request.dispatcher.routing_type != "json" or not request.env.uid:
            return result  # the external API's /jsonrpc names its user in its arguments only
        if not person_request(request.env):  # again: the route may have logged someone in
            return result
        return scan_result(request.env, result, request.httprequest.path)


def strike_out(error, seen):
    """Strike the plaintext server code decrypted during the request out of the message of
    ``error``, which goes to a person who may not read it (and to the server log): Odoo formats
    messages from real values in sudo ("Linked active users: <a registrant's name>")."""
    mask = _("[encrypted]")
    replacement = _(
        "The operation failed. Its message is withheld: it may name registry data that you may "
        "not read (the request read too many values to strike them out). Ask someone who may read "
        "them (a Crypto Admin) to try it."
    )
    # The exceptions it was raised from too: a traceback (sent with the error) shows their
    # messages. (QWeb's keeps its message in ``title``.)
    seen_errors = set()
    while error is not None and id(error) not in seen_errors:
        seen_errors.add(id(error))
        error.args = tuple(seen.redact(arg, mask, replacement) for arg in error.args)
        if isinstance(getattr(error, "title", None), str):
            error.title = seen.redact(error.title, mask, replacement)
        error = error.__cause__ or error.__context__


def strike_out_external(dbname, uid, error, seen):
    """``strike_out`` for an external API call whose user may not read plaintext (the policy is
    read in a transaction of its own: the call's is gone). When the policy cannot be read, the
    message is struck out all the same."""
    try:
        with Registry(dbname).cursor() as cr:
            allowed = reader_allowed(api.Environment(cr, int(uid), {}))
    except Exception:  # pylint: disable=broad-except
        allowed = False
    if not allowed:
        strike_out(error, seen)


class IrBinary(models.AbstractModel):
    _inherit = "ir.binary"

    def _get_stream_from(
        self,
        record,
        field_name="raw",
        filename=None,
        filename_field="name",
        mimetype=None,
        default_mimetype="application/octet-stream",
    ):
        # A file's name is a field of its record (``name``, or any field the URL names): the
        # Content-Disposition of /web/image and /web/content, an avatar's included, is an exit.
        args = (record, field_name, filename, filename_field, mimetype, default_mimetype)
        if not person_request(self.env):
            return super()._get_stream_from(*args)
        with exit_for(self.env, f"{record._name}.{field_name} (file)"):
            return super()._get_stream_from(*args)


class Base(models.AbstractModel):
    _inherit = "base"

    @api.model_create_multi
    def create(self, vals_list):
        with self._g2p_wizard_of_masks("create"):
            return super().create(vals_list)

    def write(self, vals):
        # A record that leaves the scope stores its next values in the clear, and so do the
        # values Odoo computes again from its encrypted ones (a partner's full name): a person
        # who may not read them may not take records out of it.
        with self._g2p_wizard_of_masks("write"):
            leaving = self._g2p_may_leave_scope(vals)
            result = super().write(vals)
            leaving._g2p_check_still_in_scope()
            return result

    @contextlib.contextmanager
    def _g2p_wizard_of_masks(self, method):
        """The block of ``method`` (``create`` or ``write``) of a wizard that a person who may not
        read plaintext makes or changes over RPC: a masked exit, left once the wizard's stored
        computed fields are computed in it. What Odoo copies into the wizard's own fields (the
        composer's record name and subject) is then made of masks, as the web client's dialog
        shows it (its onchange is an exit), instead of plaintext that any later read, where
        nothing is decrypted any more, would hand back. Nothing for any other call."""
        if not (self._transient and serves_wizard_write(self) and person_not_allowed(self.env)):
            yield
            return
        with exit_for(self.env, f"{self._name}.{method}", allowed=False):
            yield
            _compute_wizards(self.env)

    def copy(self, default=None):
        # A copy made by a person who may not read the record is made of masks and labels
        # ("Registrant #12 (copy)"): refused before anything is copied.
        if holds_own_values(self) and person_not_allowed(self.env) and self.sudo()._g2p_in_scope():
            raise UserError(
                _(
                    "Only a person who may read the registry's data can duplicate a record of "
                    "it: the copy would be made of masks."
                )
            )
        return super().copy(default)

    def check_access_rule(self, operation):
        if self._transient:
            refuse_others_wizards(self)
        return super().check_access_rule(operation)

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None, access_rights_uid=None):
        if self._transient and person_not_allowed(self.env):
            # Their own wizards only (refuse_others_wizards): another user's may hold plaintext.
            domain = expression.AND([domain or [], [("create_uid", "=", self.env.uid)]])
        return super()._search(domain, offset, limit, order, access_rights_uid)

    def _g2p_check_still_in_scope(self):
        """Refuse the change (raise) when records of ``self`` (``_g2p_may_leave_scope``) left it."""
        if self and self.exists() != self.exists()._g2p_in_scope():
            raise UserError(
                _(
                    "Only a person who may read the registry's data can take a record out of it (a "
                    "registrant, a contact from under one): its data would then be stored in the clear."
                )
            )

    def _g2p_may_leave_scope(self, vals):
        """The records of ``self`` in scope (sudo) that ``vals`` may take out of it, written by a
        person who may not read them; else none."""
        if not (self and self._g2p_encrypted and self._g2p_scope_path and holds_own_values(self)):
            return self.browse()
        first = self._fields.get(self._g2p_scope_path.partition(".")[0])
        triggers = {first.name, *(path.partition(".")[0] for path in self.pool.field_depends.get(first, ()))}
        if triggers.isdisjoint(vals) or not self._g2p_encrypting() or not person_not_allowed(self.env):
            return self.browse()
        return self.sudo()._g2p_in_scope()

    # Scope and masks ---------------------------------------------------------------------------
    def _g2p_in_scope(self):
        """The records of ``self`` whose encrypted fields are encrypted (all, unless the model or
        its configuration narrows it: registrants only for res.partner)."""
        path = self._g2p_scope_path
        if not path:
            if not self._g2p_encrypted and self._inherits:
                return self._g2p_delegated_in_scope()
            return self
        if "." in path or self._fields[path].relational:
            return self.filtered(path)
        # A field of the record itself (is_registrant): its values in one pass over the cache.
        return self.browse([rid for rid, value in zip(self._ids, self.mapped(path), strict=True) if value])

    def _g2p_delegated_in_scope(self):
        """The records in scope of a model that delegates to models with encrypted fields
        (``_inherits``) and has none of its own: a user's name is its partner's, an e-mail's
        subject its message's. Each has the scope of the records it delegates to (none when they
        cannot be in scope). (A model with encrypted fields of its own and no scope has all its
        records in scope, as its list says.)"""
        in_scope = set()
        records = self.sudo()
        for parent_model, link in self._inherits.items():
            if may_be_in_scope(self.env[parent_model]):
                records.fetch([link])
                parents = set(records.mapped(link)._g2p_in_scope()._ids)
                in_scope.update(record.id for record in records if record[link].id in parents)
        return self.browse([record_id for record_id in self._ids if record_id in in_scope])

    def _g2p_scope_column(self):
        """The column that holds the scope of each record, when it is a stored flag of the record
        itself (``g2p_in_registry``); None when the scope goes through a relation or a method."""
        if type(self)._g2p_in_scope is not Base._g2p_in_scope:
            return None  # a scope of its own (mail's copies follow their document)
        path = self._g2p_scope_path
        field = self._fields.get(path) if path else None
        if field is None or field.type != "boolean" or not field.store:
            return None
        return path

    def _g2p_label(self):
        """A pseudonymous label that identifies the record without revealing anything."""
        self.ensure_one()
        return self._g2p_label_format().replace(ID_SLOT, str(getattr(self.id, "origin", None) or self.id))

    def _g2p_label_key(self):
        """What the wording of the record's label depends on, besides its model: the records of
        one key share one translated label format."""
        return None

    def _g2p_label_format(self):
        """The record's label in the user's language, ``ID_SLOT`` where its id goes."""
        return _("%(model)s #%(id)s", model=self._description, id=ID_SLOT)

    @api.model
    def _g2p_mask_text(self):
        return _("[encrypted]")

    def _g2p_mask(self, field):
        """What a person who may not read ``field`` of this record sees instead."""
        self.ensure_one()
        return ExitState(False, True, None).mask(field, self)

    # Exits -----------------------------------------------------------------------------------------
    def _read_format(self, fnames, load="_classic_read"):
        # Serves read, search_read, web_read and the chatter's message format.
        if not person_request(self.env):
            open_for_read(self, fnames)
            return super()._read_format(fnames, load)
        with exit_for(self.env, f"{self._name}.read"):
            open_for_read(self, fnames)
            return super()._read_format(fnames, load)

    def web_read(self, specification):
        if not person_request(self.env):
            return super().web_read(specification)
        with exit_for(self.env, f"{self._name}.web_read"):
            return super().web_read(specification)

    @api.model
    def name_search(self, name="", args=None, operator="ilike", limit=100):
        if not person_request(self.env):
            return super().name_search(name, args, operator, limit)
        with exit_for(self.env, f"{self._name}.name_search"):
            return super().name_search(name, args, operator, limit)

    @api.model
    def read_group(self, domain, fields, groupby, offset=0, limit=None, orderby=False, lazy=True):
        if not person_request(self.env):
            return super().read_group(domain, fields, groupby, offset, limit, orderby, lazy)
        with exit_for(self.env, f"{self._name}.read_group"):
            return super().read_group(domain, fields, groupby, offset, limit, orderby, lazy)

    def export_data(self, fields_to_export):
        if not person_request(self.env):
            return super().export_data(fields_to_export)
        with exit_for(self.env, f"{self._name}.export_data"):
            return super().export_data(fields_to_export)
