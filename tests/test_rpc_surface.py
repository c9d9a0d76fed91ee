# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The RPC surface is the security boundary: every public method of the addon's models, called over
JSON-RPC (``/web/dataset/call_kw``) as a portal user, a clerk, a key custodian and a Crypto Admin.

``DECISIONS`` records, for each ``(model, method)``, who may call it: the outcome each role must
get. The test enumerates the public methods (a name not starting with ``_``: what Odoo lets a
client call) that the addon's classes define on every model, its own or extended, and fails when
one has no decision. Outcomes:

* ``ok``: the call ran; ``refused``: it passed the access check and was refused for a business
  reason (``UserError``, ``ValidationError``...); ``error``: it passed and failed otherwise (an
  argument JSON cannot carry, an empty recordset);
* ``denied``: ``AccessError``, and nothing changed (the addon's tables and this server's custody
  memory are compared before and after);
* ``identity``: the answer is Odoo's "Security Control" dialog: the password is asked again
  before anything happens.

``now`` records where the code of today differs from the decision, with the owner who closes the
gap; the test fails when a gap closes, so that the table is updated. To add a model or a method:
add a line to ``DECISIONS`` (and a fixture to ``Fixtures`` if it needs a record). Run with
``G2P_RPC_OBSERVE=1`` to print what each role gets (a help for filling the table; it asserts nothing
more than the normal run).
"""

import hashlib
import os
import re
import sys
from typing import NamedTuple

from odoo.tests import HttpCase, new_test_user, tagged

from ..models.custody_server import ServerMemory
from ..models.encryption_exits import EXTERNAL_VALUE_METHODS, is_external_exit
from ..models.encryption_provider import clear_data_key_cache
from .web_client import RpcError, WebClient

OK, DENIED, REFUSED, ERROR, IDENTITY = "ok", "denied", "refused", "error", "identity"
ROLES = ("portal", "clerk", "custodian", "crypto_admin")
PRIVATE = re.compile(r"^(_.*|init)$")  # odoo.service.model.check_method_name
ADDON_MODULE = "odoo.addons.g2p_encryption."
BASE_CALLED_ON = "res.partner"  # the model the addon's methods of every model are called on
REFUSALS = {
    "UserError",
    "CryptoUserError",
    "RemoteServiceUserError",
    "UndecryptableUserError",
    "ValidationError",
    "MissingError",
    "RedirectWarning",
}


class Call(NamedTuple):
    """How to call a method: on a fixture's records (its name) or on the model (``None``)."""

    fixture: str | None = None
    args: tuple = ()
    kwargs: dict = {}  # noqa: RUF012 - never mutated
    model: str | None = None  # for a method of every model: the model called (else res.partner)


class Decision(NamedTuple):
    expect: dict
    call: Call = Call()
    now: dict = {}  # noqa: RUF012 - never mutated
    owner: str = ""


def decide(portal, clerk, custodian, crypto_admin, call=None, now=None, owner=""):
    return Decision(
        dict(zip(ROLES, (portal, clerk, custodian, crypto_admin), strict=True)),
        call or Call(),
        now or {},
        owner,
    )


def admin_only(call=None, **kwargs):
    return decide(DENIED, DENIED, DENIED, OK, call, **kwargs)


def admin_identity(call=None, **kwargs):
    return decide(DENIED, DENIED, DENIED, IDENTITY, call, **kwargs)


def custody_roles(call=None, **kwargs):
    return decide(DENIED, DENIED, OK, OK, call, **kwargs)


def nobody(call=None, **kwargs):
    return decide(DENIED, DENIED, DENIED, DENIED, call, **kwargs)


def acl(portal, clerk, custodian, crypto_admin, call=None, **kwargs):
    """An ORM method the addon overrides: the access rights decide, as for any model."""
    return decide(portal, clerk, custodian, crypto_admin, call, **kwargs)


PROVIDER = "g2p.encryption.provider"
LEAD = "lead (provider value API)"
CORE = "core helper (KeyManager provider)"
# The public contract: server code (sudo) and Crypto Admins only (a Crypto Admin's decrypt_data is
# written to the decryption log). The types implement it in private ``_<op>_<type>`` methods, which
# RPC cannot call. jwt_verify and get_jwks hand out public keys only: the provider's access rights
# decide (providers are the Crypto Admin's). Crypto Admin's outcome: what a call with JSON
# arguments gets (bytes cannot travel: an error, or the refusal of a token that is not one).
_VALUE_CALLS = {
    "encrypt_data": ("provider", ("x",), ERROR),
    "decrypt_data": ("provider", ("x",), REFUSED),
    "jwt_sign": ("provider", ({"voucher": 1},), OK),
    "jwt_verify": ("provider", ("a.b.c",), REFUSED),
    "get_jwks": ("provider", (), OK),
}
PROVIDER_VALUE_API = {
    name: decide(DENIED, DENIED, DENIED, admin, Call(fixture, args), owner=LEAD)
    for name, (fixture, args, admin) in _VALUE_CALLS.items()
}

DECISIONS = {
    # Tamper-evident logs (custody helper) -------------------------------------------------------
    ("g2p.audit.chain", "action_audit_check"): decide(DENIED, DENIED, DENIED, REFUSED, Call("chain")),
    ("g2p.audit.chain", "create"): nobody(Call(None, ([{}],))),
    ("g2p.audit.chain", "write"): nobody(Call("chain", ({"chain_hash": "0"},))),
    ("g2p.encryption.event", "action_audit_check"): admin_only(Call("event")),
    ("g2p.encryption.event", "create"): nobody(Call(None, ([{"event": "seal", "detail": "forged"}],))),
    ("g2p.encryption.event", "write"): nobody(Call("event", ({"detail": "nothing happened"},))),
    # Custody and its ceremonies (custody helper) ------------------------------------------------
    ("g2p.internal.records", "create"): nobody(Call(None, ([{}],))),
    ("g2p.internal.records", "write"): nobody(Call("none", ({"name": "forged"},))),
    ("g2p.encryption.custody", "action_check"): admin_only(Call("custody")),
    ("g2p.encryption.custody", "action_seal"): admin_identity(Call("custody")),
    ("g2p.encryption.custody", "seal_status"): custody_roles(),
    ("g2p.encryption.custody", "create"): nobody(Call(None, ([{"provider_id": 1, "threshold": 2}],))),
    ("g2p.encryption.custody", "write"): nobody(Call("custody", ({"threshold": 2, "share_count": 2},))),
    ("g2p.encryption.custody.ceremony", "action_abandon"): admin_only(Call("ceremony")),
    ("g2p.encryption.custody.ceremony", "action_confirm_start"): admin_only(Call("ceremony")),
    ("g2p.encryption.custody.ceremony", "action_enter_share"): custody_roles(Call("ceremony")),
    ("g2p.encryption.custody.ceremony", "create"): nobody(Call(None, ([{"kind": "initialise"}],))),
    ("g2p.encryption.custody.ceremony", "write"): nobody(Call("ceremony", ({"state": "done"},))),
    ("g2p.encryption.custody.share.dialog", "action_enter_share"): decide(
        DENIED, DENIED, ERROR, ERROR, Call("none")
    ),
    ("g2p.encryption.custody.share.entry", "action_enter_share"): decide(
        DENIED, DENIED, ERROR, ERROR, Call("none")
    ),
    ("g2p.encryption.custody.initialise.wizard", "action_initialise"): admin_identity(
        Call("initialise_wizard")
    ),
    ("g2p.encryption.custody.unseal.wizard", "action_enter_share"): custody_roles(Call("unseal_wizard")),
    ("g2p.encryption.custody.rekey.wizard", "action_enter_share"): custody_roles(Call("rekey_wizard")),
    ("g2p.encryption.custody.rekey.wizard", "action_abandon"): custody_roles(Call("rekey_wizard")),
    ("g2p.encryption.custody.rekey.wizard", "action_rekey"): admin_identity(Call("rekey_wizard")),
    # The provider (lead; KeyManager parts: core helper) -----------------------------------------
    **{(PROVIDER, name): decision for name, decision in PROVIDER_VALUE_API.items()},
    (PROVIDER, "action_rotate_key"): admin_identity(Call("provider")),
    (PROVIDER, "action_encrypt_registry"): admin_only(Call("provider")),
    (PROVIDER, "action_reencrypt_registry"): admin_only(Call("provider")),
    (PROVIDER, "action_migrate_openg2p_registry"): admin_only(Call("provider")),
    # Unreachable here: a notification says so (tests/test_keymanager_provider.py reads it).
    (PROVIDER, "action_test_connection"): admin_only(Call("km_provider")),
    (PROVIDER, "create"): acl(DENIED, DENIED, DENIED, OK, Call(None, ([{"name": "RPC made"}],))),
    (PROVIDER, "write"): acl(DENIED, DENIED, DENIED, OK, Call("provider", ({"sequence": 7},))),
    (PROVIDER, "unlink"): acl(DENIED, DENIED, DENIED, OK, Call("spare_provider")),
    ("g2p.encryption.key", "create"): nobody(
        Call(None, ([{"provider_id": 1, "key_id": "forged", "usage": "sign"}],))
    ),
    ("g2p.encryption.key", "write"): acl(DENIED, DENIED, DENIED, OK, Call("key", ({"state": "retired"},))),
    # Registry (lead) ----------------------------------------------------------------------------
    # The engine and the exits extend every model (base): ORM methods, the access rights decide;
    # what they answer is gated (tests/test_registry_exits.py). Called on a registrant.
    ("base", "unlink"): acl(DENIED, OK, DENIED, OK, Call("spare_partner")),
    # Deleting a registrant with contacts under it is refused to whoever may not read them
    # (test_registry_exits.py); otherwise Odoo's rights decide.
    ("res.partner", "unlink"): acl(DENIED, OK, DENIED, OK, Call("spare_partner")),
    # What a value holding a mask does to a record in scope is tested in test_registry_exits.py;
    # Odoo's rights decide who writes. Called on a contact tag: with OpenG2P's registry a write of
    # any partner touches group memberships (its registrars only).
    ("base", "write"): acl(
        DENIED, OK, DENIED, OK, Call("tag", ({"name": "RPC tag renamed"},), model="res.partner.category")
    ),
    # Odoo's rights decide; a wizard a person who may not read plaintext makes is made of masks
    # (test_registry_exits.py). Called on a contact tag, as write.
    ("base", "create"): acl(
        DENIED, OK, DENIED, OK, Call(None, ([{"name": "RPC tag made"}],), model="res.partner.category")
    ),
    # Odoo's own check, kept to a wizard's maker for a person who may not read plaintext
    # (test_registry_exits.py). Called on a registrant: whoever reads it passes.
    ("base", "check_access_rule"): acl(DENIED, OK, OK, OK, Call("partner", ("read",))),
    # *Create company* beside a contact's Company Name: whoever reads the contact may call it; on
    # a contact without one it does nothing. Making the company is Odoo's rights' to decide (with
    # OpenG2P's registry, a registrar's); what it stores for a registrant is tested in
    # test_registry_exits.py.
    ("res.partner", "create_company"): acl(DENIED, OK, OK, OK, Call("partner")),
    # A message's text: Odoo's rights decide who may write it (the document's writers); once the
    # registry is encrypted, a person who may not read it is refused an edit of a registrant's
    # (test_registry_exits.py). Here: a message about an ordinary contact.
    ("mail.message", "write"): acl(DENIED, OK, DENIED, OK, Call("message", ({"body": "Edited"},))),
    # Odoo's rights: portal users read partners through record rules, internal users all of them.
    ("base", "web_read"): acl(DENIED, OK, OK, OK, Call("partner", ({"name": {}},))),
    ("base", "name_search"): acl(OK, OK, OK, OK, Call(None, ("RPC contact",))),
    ("base", "read_group"): acl(OK, OK, OK, OK, Call(None, ([], ["is_registrant"], ["is_registrant"]))),
    # Odoo refuses an export to whoever lacks "Access to export feature" (a UserError).
    ("base", "export_data"): acl(REFUSED, OK, REFUSED, OK, Call("partner", (["name"],))),
    # Value methods, exits over the external API as over the web client (test_registry_exits.py).
    ("base", "mapped"): acl(DENIED, OK, OK, OK, Call("partner", ("name",))),
    ("base", "copy_data"): acl(DENIED, OK, OK, OK, Call("partner")),
    ("base", "name_get"): acl(DENIED, OK, OK, OK, Call("partner")),
    ("base", "onchange"): acl(DENIED, OK, OK, OK, Call("partner", ({}, [], {"name": {}}))),
    # Duplicate: Odoo's rights decide who creates (called on a contact tag: with OpenG2P's
    # registry a partner's copy touches group memberships); a registrant's copy is refused to whoever
    # may not read it (test_registry_exits.py).
    ("base", "copy"): acl(DENIED, OK, DENIED, OK, Call("tag", model="res.partner.category")),
    ("base", "default_get"): acl(OK, OK, OK, OK, Call(None, (["name", "type"],))),
    # A chat (the avatar card's "Send message"), named after a registrant's label
    # (test_registry_exits.py); Odoo's rights decide who makes one.
    ("discuss.channel", "channel_get"): acl(DENIED, OK, OK, OK, Call(None, ([],))),
    # Inviting partners into a channel, a group chat with them: named by labels, in a masked exit
    # (test_registry_exits.py); Odoo's rights decide who invites.
    ("discuss.channel", "add_members"): acl(OK, OK, OK, OK, Call("channel")),
    ("discuss.channel", "create_group"): acl(DENIED, OK, OK, OK, Call(None, ([],))),
    ("g2p.encrypted.field", "create"): acl(
        DENIED, DENIED, DENIED, OK, Call(None, ([{"model_name": "res.partner", "field_name": "ref"}],))
    ),
    ("g2p.encrypted.field", "write"): acl(
        DENIED, DENIED, DENIED, OK, Call("field_config", ({"sequence": 3},))
    ),
    ("g2p.encrypted.field", "unlink"): acl(DENIED, DENIED, DENIED, OK, Call("field_config")),
    ("g2p.decryption.log", "action_open_records"): admin_only(Call("decryption_row")),
    ("g2p.decryption.log", "action_audit_check"): admin_only(Call("decryption_row")),
    ("g2p.decryption.log", "create"): nobody(Call(None, ([{"res_model": "res.partner"}],))),
    ("g2p.decryption.log", "write"): nobody(Call("decryption_row", ({"res_model": "forged"},))),
    ("g2p.search.log", "action_audit_check"): admin_only(Call("search_row")),
    ("g2p.search.log", "create"): nobody(Call(None, ([{"res_model": "res.partner", "field_name": "x"}],))),
    ("g2p.search.log", "write"): nobody(Call("search_row", ({"refused": "forged"},))),
    # Settings are the Administrator's (Odoo's access rights); Crypto Admin alone opens nothing.
    # The Settings block's state as the page's defaults: empty for those who cannot open Settings.
    ("res.config.settings", "default_get"): acl(OK, OK, OK, OK, Call(None, (["g2p_custody_status"],))),
    ("res.config.settings", "execute"): acl(DENIED, DENIED, DENIED, DENIED, Call("settings")),
    ("res.config.settings", "set_values"): acl(DENIED, DENIED, DENIED, DENIED, Call("settings")),
    ("res.config.settings", "action_g2p_count_registry"): admin_only(Call("settings")),
    ("res.config.settings", "action_g2p_open_registrants"): admin_only(Call("settings")),
    ("res.config.settings", "action_g2p_open_jobs"): admin_only(Call("settings")),
    ("g2p.encryption.job", "action_resume"): admin_only(Call("failed_job")),
    # The addon's own parameters: a Crypto Admin's (Settings writes them after its own checks).
    ("ir.config_parameter", "create"): nobody(
        Call(None, ([{"key": "g2p_encryption.decrypt_registry", "value": "True"}],))
    ),
    ("ir.config_parameter", "write"): nobody(Call("decrypt_param", ({"value": "True"},))),
    ("ir.config_parameter", "unlink"): nobody(Call("decrypt_param")),
}


class Fixtures:
    """Records the calls are made on; wizards are made by each user (Odoo shows a user only theirs)."""

    def __init__(self, case):
        self.case = case
        self.env = case.env

    def ids(self, name, user):
        if name is None:
            return None
        if name == "none":
            return []
        made = getattr(self, name)
        return (made(user) if callable(made) else made).ids

    def provider(self, _user):
        return self.case.provider

    def spare_provider(self, _user):
        return self.env[PROVIDER].create({"name": "RPC spare"})

    def km_provider(self, _user):
        return self.case.km_provider

    def key(self, _user):
        return self.case.provider.key_ids[:1]

    def custody(self, _user):
        return self.case.custody

    def ceremony(self, _user):
        provider = self.env[PROVIDER].create({"name": "RPC ceremony"})
        return self.env["g2p.encryption.custody.ceremony"]._start_initialise(provider, 2, 3)

    def event(self, _user):
        return self.case.event

    def chain(self, _user):
        return self.env["g2p.audit.chain"]

    def partner(self, _user):
        return self.case.partner

    def message(self, _user):
        vals = {
            "model": "res.partner",
            "res_id": self.case.partner.id,
            "body": "RPC note",
            "message_type": "comment",
        }
        return self.env["mail.message"].create(vals)

    def field_config(self, _user):
        return self.env["g2p.encrypted.field"].create({"model_name": "res.partner", "field_name": "ref"})

    def decryption_row(self, _user):
        log = self.env["g2p.decryption.log"]
        log._write_row("exit", "/rpc-surface", "res.partner", {"name"}, self.case.partner.ids)
        return log.search([], order="id desc", limit=1)

    def search_row(self, _user):
        vals = {"user_id": self.env.uid, "res_model": "res.partner", "field_name": "email", "value_count": 1}
        return self.env["g2p.search.log"]._log(vals, 0)

    def decrypt_param(self, _user):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("g2p_encryption.decrypt_registry", "")
        return params.search([("key", "=", "g2p_encryption.decrypt_registry")])

    def failed_job(self, _user):
        vals = {"provider_id": self.case.provider.id, "kind": "encrypt", "state": "failed"}
        return self.env["g2p.encryption.job"].create(vals)

    def channel(self, user):
        member = {"partner_id": user.partner_id.id}
        return self.env["discuss.channel"].create(
            {"name": "RPC room", "channel_member_ids": [(0, 0, member)]}
        )

    def tag(self, _user):
        return self.env["res.partner.category"].create({"name": "RPC tag"})

    def spare_partner(self, _user):
        return self.env["res.partner"].create({"name": "RPC spare contact"})

    def settings(self, user):
        return self.env["res.config.settings"].with_user(user).sudo().create({})

    def _wizard(self, model, user, vals):
        return self.env[model].with_user(user).sudo().create(vals).with_user(self.env.user)

    def initialise_wizard(self, user):
        provider = self.env[PROVIDER].create({"name": "RPC initialise"})
        return self._wizard("g2p.encryption.custody.initialise.wizard", user, {"provider_id": provider.id})

    def unseal_wizard(self, user):
        return self._wizard(
            "g2p.encryption.custody.unseal.wizard", user, {"custody_id": self.case.custody.id}
        )

    def rekey_wizard(self, user):
        return self._wizard("g2p.encryption.custody.rekey.wizard", user, {"custody_id": self.case.custody.id})


def public_methods(env):
    """{(model, method)} of every public method the addon's classes define, on every model.

    The addon's extensions of ``base`` (the exits, the encrypted-field engine) add their methods to
    every model: they are listed once, under ``base``, and called on a registrant; so are the
    methods it wraps on every model's class (the external API's value methods)."""
    found = set()
    for name in env.registry:
        for klass in type(env[name]).__mro__:
            if not klass.__module__.startswith(ADDON_MODULE):
                continue
            owner = "base" if list(vars(klass).get("_inherit", ())) == ["base"] else name
            for attr, value in vars(klass).items():
                if PRIVATE.match(attr) or not callable(value) or isinstance(value, type):
                    continue
                if attr in env[name]._fields:
                    continue
                found.add((owner, attr))
        for attr, value in vars(type(env[name])).items():  # wrapped by the exits' _register_hook
            if is_external_exit(value) and attr in EXTERNAL_VALUE_METHODS:  # not other modules'
                found.add(("base", attr))
    return found


@tagged("post_install", "-at_install")
class TestRpcSurface(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.users = {
            "portal": new_test_user(env, login="g2p_rpc_portal", groups="base.group_portal"),
            "clerk": new_test_user(
                env,
                login="g2p_rpc_clerk",
                groups="base.group_user,base.group_partner_manager,base.group_allow_export",
            ),
            "custodian": new_test_user(
                env, login="g2p_rpc_custodian", groups="base.group_user,g2p_encryption.key_custodian"
            ),
            "crypto_admin": new_test_user(
                env,
                login="g2p_rpc_crypto_admin",
                groups="base.group_user,base.group_partner_manager,base.group_allow_export,"
                "g2p_encryption.crypto_admin",
            ),
        }
        cls.provider = env[PROVIDER].create({"name": "RPC surface"})
        cls.provider.encrypt_data(b"a data key")
        cls.km_provider = env[PROVIDER].create(
            {
                "name": "RPC KeyManager",
                "type": "keymanager",
                "keymanager_api_base_url": "http://127.0.0.1:9/v1/keymanager",
                "keymanager_auth_url": "http://127.0.0.1:9/token",
                "keymanager_api_timeout": 0.5,
                "keymanager_api_retries": 0,
            }
        )
        sealed = env[PROVIDER].create({"name": "RPC sealed"})
        ceremony = env["g2p.encryption.custody.ceremony"]._start_initialise(sealed, 2, 3)
        cls.shares = ceremony._pending().shares
        ceremony.action_confirm_start()
        for share in cls.shares[:2]:
            ceremony._take_share(share)
        cls.sealed_provider = sealed
        cls.custody = sealed.custody_id
        cls.event = env["g2p.encryption.event"]._record(cls.provider, "seal", detail="RPC fixture")
        cls.partner = env["res.partner"].create({"name": "RPC contact"})
        cls.addClassCleanup(clear_data_key_cache)

    def setUp(self):
        super().setUp()
        self.fixtures = Fixtures(self)
        self.addCleanup(self.forget_custody_memory)
        for share in self.shares[:2]:  # unsealed here, whatever the test before did
            self.custody._enter_share(share)

    def forget_custody_memory(self):
        for provider in self.env[PROVIDER].search([("name", "like", "RPC %")]):
            ServerMemory(self.env, provider.id).forget()

    def fingerprint(self):
        """What a denied call must not change: the addon's tables and this server's custody memory."""
        self.env.flush_all()
        digest = hashlib.sha256()
        for name in sorted(self.env.registry):
            model = self.env[name]
            if model._abstract or not model._auto or model._original_module != "g2p_encryption":
                continue
            # Table names come from the registry.
            self.env.cr.execute(
                f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM \"{model._table}\" t"
            )  # pylint: disable=sql-injection
            digest.update(f"{name}:{self.env.cr.fetchone()[0]}".encode())
        store = ServerMemory(self.env, 0).store
        for path in sorted(os.listdir(store.directory)):
            if path.startswith(store.prefix + "." + store.instance):
                digest.update(
                    path.encode() + str(os.stat(os.path.join(store.directory, path)).st_mtime_ns).encode()
                )
        return digest.hexdigest()

    def outcome(self, client, model, method, call, ids):
        args = ([ids] if ids is not None else []) + list(call.args)
        try:
            result = client.call(model, method, *args, **call.kwargs)
        except RpcError as error:
            name = error.short_name
            if name == "AccessError":
                return DENIED, error.message
            return (REFUSED if name in REFUSALS else ERROR), error.message
        if isinstance(result, dict) and result.get("res_model") == "res.users.identitycheck":
            return IDENTITY, ""
        return OK, ""

    def test_every_public_method_has_a_decision(self):
        missing = sorted(public_methods(self.env) - set(DECISIONS))
        self.assertFalse(missing, f"public methods without a decision in DECISIONS: {missing}")
        stale = sorted(set(DECISIONS) - public_methods(self.env))
        self.assertFalse(stale, f"decisions about methods that are no longer public: {stale}")

    def test_each_role_gets_what_the_table_decides(self):
        observe = os.environ.get("G2P_RPC_OBSERVE")
        mismatches, closed_gaps, changed = [], [], []
        for role in ROLES:
            user = self.users[role]
            client = WebClient(self, user.login)
            for (model, method), decision in sorted(DECISIONS.items()):
                self.env.cr.execute("SAVEPOINT g2p_rpc_surface")
                ids = self.fixtures.ids(decision.call.fixture, user)
                before = self.fingerprint()
                called = (decision.call.model or BASE_CALLED_ON) if model == "base" else model
                got, message = self.outcome(client, called, method, decision.call, ids)
                after = self.fingerprint()
                self.env.cr.execute("ROLLBACK TO SAVEPOINT g2p_rpc_surface")
                self.env.invalidate_all()
                clear_data_key_cache()
                target, today = decision.expect[role], decision.now.get(role, decision.expect[role])
                line = f"{role:12} {model}.{method}: {got} ({message[:90]!r})"
                if observe:
                    sys.stdout.write(line + "\n")  # the observation mode prints, by design
                if got != today:
                    mismatches.append(f"{line}; the table says {today}")
                elif role in decision.now and got == target:
                    closed_gaps.append(f"{line}: the gap ({decision.owner}) is closed: drop `now`")
                if got == DENIED and before != after:
                    changed.append(line)
        self.assertFalse(mismatches, "\n" + "\n".join(mismatches))
        self.assertFalse(closed_gaps, "\n" + "\n".join(closed_gaps))
        self.assertFalse(changed, "denied calls that changed something:\n" + "\n".join(changed))

    # Context keys a client sends open nothing ----------------------------------------------------
    def test_forged_context_writes_are_refused(self):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("g2p_encryption.encrypt_registry", "True")
        registrant = self.env["res.partner"].create({"name": "Zforged Registrant", "is_registrant": True})
        key = self.provider.key_ids.filtered(lambda k: k.usage == "sign")[:1] or self.provider.key_ids[:1]
        ceremony = self.fixtures.ceremony(None)
        forged = {
            "g2p_encrypted_write": True,
            "g2p_key_material": True,
            "g2p_custody": True,
            "g2p_internal": True,
        }
        cases = [
            # (role, model, records, vals, decision, today, owner)
            ("crypto_admin", "g2p.encryption.key", key, {"public_jwk": '{"kty": "oct"}'}, DENIED, DENIED, ""),
            (
                "crypto_admin",
                "g2p.encryption.custody",
                self.custody,
                {"threshold": 2, "share_count": 9},
                DENIED,
                DENIED,
                "",
            ),
            (
                "crypto_admin",
                "g2p.encryption.custody.ceremony",
                ceremony,
                {"state": "done"},
                DENIED,
                DENIED,
                "",
            ),
            ("custodian", "g2p.encryption.custody.ceremony", ceremony, {"box_key": "00"}, DENIED, DENIED, ""),
            ("crypto_admin", "g2p.encryption.event", self.event, {"detail": "forged"}, DENIED, DENIED, ""),
        ]
        problems = []
        for role, model, records, vals, decision, today, owner in cases:
            client = WebClient(self, self.users[role].login)
            self.env.cr.execute("SAVEPOINT g2p_forged")
            before = self.fingerprint()
            try:
                client.call(model, "write", records.ids, vals, context=forged)
                got = OK
            except RpcError as error:
                got = DENIED if error.short_name == "AccessError" else ERROR
            changed = got == DENIED and self.fingerprint() != before
            self.env.cr.execute("ROLLBACK TO SAVEPOINT g2p_forged")
            self.env.invalidate_all()
            line = f"{role} {model}.write({vals}) with a forged context: {got}"
            if got != today or changed:
                problems.append(
                    f"{line}; the table says {today}{' and it changed something' if changed else ''}"
                )
            elif today != decision and got == decision:
                problems.append(f"{line}: the gap ({owner}) is closed: update this test")
        self.assertFalse(problems, "\n".join(problems))
        # A clerk's write with every forged key is a plain write: the value is stored encrypted.
        # (With OpenG2P's registry, writing a registrant touches group memberships: registrars only.)
        registrar = self.env.ref("g2p_registry_base.group_g2p_registrar", raise_if_not_found=False)
        if registrar:
            self.users["clerk"].groups_id += registrar
        WebClient(self, self.users["clerk"].login).call(
            "res.partner", "write", registrant.ids, {"name": "Zforged Renamed"}, context=forged
        )
        self.env.cr.execute("SELECT name FROM res_partner WHERE id = %s", [registrant.id])
        self.assertTrue(self.env.cr.fetchone()[0].startswith("g2pe2."))

    # The ORM methods every model has: the access rights decide ------------------------------------
    def test_access_rights_of_the_addon_models(self):
        # read, write, create, unlink per role: r = read only, "" = nothing, "rw" read and write...
        expected = {
            "g2p.audit.chain.head": ("", "", "", ""),
            "g2p.blind.index": ("", "", "", "r"),
            "g2p.decryption.log": ("", "", "", "r"),
            "g2p.encryption.custody": ("", "", "r", "r"),
            "g2p.encryption.custody.ceremony": ("", "", "rw", "rw"),
            "g2p.encryption.custody.initialise.wizard": ("", "", "", "rwcu"),
            "g2p.encryption.custody.rekey.wizard": ("", "", "rwcu", "rwcu"),
            "g2p.encryption.custody.server": ("", "", "r", "r"),
            "g2p.encryption.custody.unseal.wizard": ("", "", "rwcu", "rwcu"),
            "g2p.encryption.event": ("", "", "r", "r"),
            "g2p.encryption.job": ("", "", "", "rwc"),
            "g2p.encryption.job.chunk": ("", "", "", "r"),
            "g2p.encryption.key": ("", "", "", "rwc"),
            "g2p.encryption.provider": ("", "", "", "rwcu"),
            "g2p.encrypted.field": ("", "", "", "rwcu"),
            "g2p.search.log": ("", "", "", "r"),
        }
        letters = {"read": "r", "write": "w", "create": "c", "unlink": "u"}
        own = sorted(
            name
            for name in self.env.registry
            if self.env[name]._original_module == "g2p_encryption" and not self.env[name]._abstract
        )
        self.assertEqual(
            own, sorted(expected), "a model of the addon without a line here, or a line too many"
        )
        for name in own:
            for role, rights in zip(ROLES, expected[name], strict=True):
                model = self.env[name].with_user(self.users[role])
                got = "".join(
                    letter
                    for operation, letter in letters.items()
                    if model.check_access_rights(operation, raise_exception=False)
                )
                with self.subTest(model=name, role=role):
                    self.assertEqual(got, rights)

    def test_rotating_keys_runs_once_the_password_was_typed_again(self):
        admin = WebClient(self, self.users["crypto_admin"].login)
        active = self.provider.key_ids.filtered(lambda k: k.state == "active")
        answer = admin.call_button(PROVIDER, "action_rotate_key", self.provider.ids)
        self.env.invalidate_all()
        self.assertEqual(active.mapped("state"), ["active"] * len(active))  # nothing yet
        admin.confirm_identity(answer)
        self.env.invalidate_all()
        self.assertEqual(set(active.mapped("state")), {"retired"})
        second = self.provider.key_ids.filtered(lambda k: k.state == "active")
        # Within ten minutes the password is not asked again.
        self.assertFalse(admin.call_button(PROVIDER, "action_rotate_key", self.provider.ids))
        self.env.invalidate_all()
        self.assertEqual(set(second.mapped("state")), {"retired"})
