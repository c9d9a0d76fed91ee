# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The RPC boundary: who may call a public method, and a write channel that no RPC client reaches.

In Odoo every public method of a model (a name not starting with ``_``) can be called by any
logged-in user over JSON-RPC, with any arguments and any context. So:

* a public method of this addon starts with ``@requires(group, ...)`` (the caller must be in one
  of the groups; ``identity=True`` also asks for the password again, as Odoo's
  ``@check_identity`` does, for the actions that change security: initialise, rekey, seal,
  rotate keys); everything else is private;
* a guard never trusts the context, which the client writes. What only the addon's own code may
  write is written through ``internal(records)``: the context holds a module-private object, and
  ``is_internal(records)`` compares it by identity. JSON cannot produce that object, so no RPC
  call passes the check, whatever context it sends. Models written only this way inherit
  ``g2p.internal.records``.

Server-side Python (``odoo shell``, scheduled actions, other modules) is trusted: under ``sudo``
the group check passes, and without an HTTP request there is nobody to ask for a password.
"""

import functools

from odoo import _, api, models
from odoo.exceptions import AccessError
from odoo.http import request

from odoo.addons.base.models.res_users import check_identity

CRYPTO_ADMIN = "g2p_encryption.crypto_admin"
KEY_CUSTODIAN = "g2p_encryption.key_custodian"
CUSTODY_GROUPS = (CRYPTO_ADMIN, KEY_CUSTODIAN)

_INTERNAL_KEY = "g2p_internal"
# Never serialisable, never equal to anything a client sends: identity is the check.
_INTERNAL = object()
# Attribute Odoo's identity check looks for on the method it calls again after the password.
_IDENTITY_MARK = "__has_check_identity"


def internal(records):
    """``records`` in an environment allowed to write what only the addon's own code writes."""
    return records.with_context(**{_INTERNAL_KEY: _INTERNAL})


def is_internal(records):
    """Whether ``records`` come from ``internal()``: never true for a call that came over RPC."""
    return records.env.context.get(_INTERNAL_KEY) is _INTERNAL


def check_groups(records, groups, what=None):
    """Raise ``AccessError`` naming the groups unless the user is in one of them (or under sudo)."""
    env = records.env
    if env.su or any(env.user.has_group(group) for group in groups):
        return
    names = []
    for xmlid in groups:
        group = env.ref(xmlid, raise_if_not_found=False)
        names.append(group.sudo().full_name if group else xmlid)
    raise AccessError(
        _(
            "%(what)s is reserved to members of %(groups)s.",
            what=what or _("This operation on %(model)s", model=records._description),
            groups=_(" or ").join(names),
        )
    )


def requires(*groups, identity=False):
    """Decorate a public method: the caller must be in one of ``groups``; with ``identity``, must
    also have typed their password in the last ten minutes (Odoo's ``@check_identity``).

    The group is checked first, so a clerk gets ``AccessError`` rather than a password prompt.
    The method gets ``_g2p_groups`` and ``_g2p_identity`` attributes: the RPC-surface test reads
    them.
    """
    if not groups:
        raise ValueError("requires() needs at least one group")

    def decorate(method):
        checked = check_identity(method) if identity else method

        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            check_groups(self, groups)
            if identity and request and not self.env.su:
                return checked(self, *args, **kwargs)
            return method(self, *args, **kwargs)

        guarded._g2p_groups = groups
        guarded._g2p_identity = identity
        if identity:
            # After the password, Odoo calls the method again by name: this wrapper, groups first.
            setattr(guarded, _IDENTITY_MARK, True)
        return guarded

    return decorate


def identity_action(records, method_name):
    """``None`` when the user typed their password in the last ten minutes (or there is no HTTP
    request, or under sudo); otherwise the "Security Control" action that asks for it and then
    calls ``method_name`` on ``records`` again (Odoo calls only a method marked for it: see
    ``identity_if``).
    """
    if records.env.su or not request:
        return None
    done = object()

    def probe(_records):
        return done

    probe.__name__ = method_name
    result = check_identity(probe)(records)
    return None if result is done else result


def identity_if(condition):
    """Decorate a method that needs the password again only when ``condition(records)`` holds.

    For turning "Decrypt registry" on in the settings::

        @identity_if(lambda settings: settings.decrypt_registry and not currently_on())
        def execute(self):
            return super().execute()

    The first call answers the "Security Control" dialog instead; after the password Odoo calls
    the method again, and it runs.
    """

    def decorate(method):
        @functools.wraps(method)
        def checked(self, *args, **kwargs):
            if condition(self):
                action = identity_action(self, method.__name__)
                if action:
                    return action
            return method(self, *args, **kwargs)

        setattr(checked, _IDENTITY_MARK, True)
        return checked

    return decorate


class InternalRecords(models.AbstractModel):
    """Records that only the addon's own code makes and changes (through ``internal()``).

    A model inheriting it lists in ``_person_fields`` the fields a person may write anyway (a share
    typed into a dialog, whose inverse does the rest) and says in ``_internal_steps()`` which steps
    write the rest, for the error message.
    """

    _name = "g2p.internal.records"
    _description = "Records Written by the Addon Only"
    _person_fields = frozenset()

    def _internal_steps(self):
        return _("its own steps")

    def _refuse_write(self):
        raise AccessError(
            _(
                "%(records)s are written only by %(steps)s, never by hand: nothing was changed.",
                records=self._description,
                steps=self._internal_steps(),
            )
        )

    @api.model_create_multi
    def create(self, vals_list):
        if not is_internal(self):
            self._refuse_write()
        return super().create(vals_list)

    def write(self, vals):
        if set(vals) - self._person_fields and not is_internal(self):
            self._refuse_write()
        return super().write(vals)
