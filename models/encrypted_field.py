# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The behaviour of an encrypted field: plaintext in the server, ciphertext at rest.

At registry set-up every field declared encrypted (``encrypted_model.py``) becomes an instance of
a subclass of its own class (``Char``, ``Text`` or ``Html``) with ``EncryptedField`` first in its MRO:

* **at rest** the column holds a token (``core/envelope.py``) bound to model, field and record;
  ``_create`` and ``_write`` encrypt (``encrypted_model.py``), the cache never does;
* **in the server** ``record.field`` is plaintext: a value fetched from the database enters the
  cache as it is stored, and is decrypted the first time something reads it, together with the
  same field of the other records being prefetched (one key look-up per batch);
* **at an exit** (``encryption_exits.py``) the value reaching a person is the plaintext only when
  the policy allows it (and is then audited); otherwise a mask, or a pseudonymous label for
  fields that name the record.

The cache tells where each plaintext came from by its type: ``AtRest`` (decrypted from the
database), ``PlainAtRest`` (stored in the clear: a record out of scope, or not converted yet),
``Given`` (set by code or typed by a user in this transaction); ``Shown`` is an ``AtRest`` value
that an exit let through (and logged). A plain ``str`` in the cache is a
value as fetched, not looked at yet. Copies keep the type (``partner.street = parent.street``
stays ``AtRest``), so values copied from storage into a new record are still gated.
"""

import logging
import threading

from odoo import _
from odoo.exceptions import UserError

from ..core import envelope, monitoring

_logger = logging.getLogger(__name__)


class AtRest(str):
    """Plaintext of a value stored encrypted."""

    __slots__ = ()


class Shown(AtRest):
    """Plaintext of a stored value that an exit let through: the exit's row in the decryption log
    names it already, so that the scan of an answer does not count it again."""

    __slots__ = ()


class PlainAtRest(str):
    """Plaintext of a value stored in the clear (out of scope, or not converted yet)."""

    __slots__ = ()


class Given(str):
    """Plaintext set in this transaction (typed by a user, or set by code)."""

    __slots__ = ()


class Masked(str):
    """A mask or label given at an exit: storing it back is refused (it would replace data)."""

    __slots__ = ()


FROM_STORAGE = (AtRest, PlainAtRest)
KEPT_TYPES = (AtRest, PlainAtRest, Masked)


class Unreadable(str):
    """The placeholder of a stored value that does not decrypt (tampered, moved)."""

    __slots__ = ()


class EncryptedField:
    """Mixin placed before ``fields.Char``/``Text``/``Html`` in encrypted fields' classes.

    ``g2p_encrypted`` is set on the field objects that are encrypted at rest: the class is also
    given to the related fields that ``_inherits`` makes of them (``res.users.name``), which are
    only gated at exits.
    """

    g2p_encrypted = False  # stored encrypted (set at set-up)
    g2p_index_kind = None  # blind-index normalisation, or None
    g2p_names_record = False  # shows a pseudonymous label at exits, rather than the mask

    @property
    def column_type(self):
        # Ciphertext is longer than plaintext: a size limit applies to the plaintext only.
        base = super().column_type
        return ("varchar", "varchar") if self.g2p_encrypted and base and base[0] == "varchar" else base

    def convert_to_cache(self, value, record, validate=True):
        cache_value = super().convert_to_cache(value, record, validate)
        if not isinstance(cache_value, str) or type(cache_value) in (AtRest, PlainAtRest, Given, Masked):
            return cache_value
        if isinstance(value, KEPT_TYPES) and cache_value == value:
            return value  # a copy of a stored (or masked) value keeps its origin
        if isinstance(value, _Encrypting):
            return Given(value.plaintext)
        return Given(cache_value)

    def convert_to_column(self, value, record, values=None, validate=True):
        if isinstance(value, _Encrypting):
            return value.token
        check_not_masked(self, value)
        return super().convert_to_column(value, record, values, validate)

    def convert_to_record(self, value, record):
        if type(value) is str and value and self.g2p_encrypted:
            value = self._g2p_open(record, value)
        exit_state = record.env.transaction.__dict__.get("g2p_exit")
        if exit_state is not None and value:
            value = exit_state.gate(self, record, value)
        return super().convert_to_record(value, record)

    def convert_to_record_multi(self, values, records):
        return [self.convert_to_record(value, record) for value, record in zip(values, records, strict=True)]

    # Lazy decryption ----------------------------------------------------------------------------
    def _g2p_open(self, record, value):
        """Decrypt ``value`` of ``record``, with the values of the records prefetched with it."""
        exit_state = record.env.transaction.__dict__.get("g2p_exit")
        if exit_state is not None and exit_state.masks(self, record, value):
            # A masked exit needs no key: nothing is decrypted for it, even while sealed.
            return AtRest(value) if is_ciphertext(value) else PlainAtRest(value)
        # The batch: the records prefetched with this one whose value is still as fetched (a
        # plain str), read straight from the field's cache (one dictionary look-up per id).
        cache = record.env.cache
        stored = cache._get_field_cache(record, self)
        record_id = record.id
        pending = []
        found = False
        for rid in record._prefetch_ids:
            raw = stored.get(rid)
            if type(raw) is str and raw:
                pending.append((rid, raw))
                found = found or rid == record_id
        if not found:
            pending.append((record_id, value))
        opened = decrypt_stored(record.env, self, pending)
        ids = [rid for rid, _raw in pending]
        cache.update_raw(record.browse(ids), self, [opened[rid] for rid in ids], check_dirty=False)
        return opened[record_id]


def column_plaintext(field, value, model, values):
    """What the column of ``field`` would hold in the clear, which is what is encrypted: HTML
    sanitised, a character field cut to its size (``convert_to_column`` of the field's own class,
    which for an encrypted field would otherwise not convert plaintext)."""
    convert = (
        super(EncryptedField, field).convert_to_column
        if isinstance(field, EncryptedField)
        else field.convert_to_column
    )
    return convert(value, model, values)


class _Encrypting(str):
    """A value on its way into a column: its plaintext for the cache, its token for SQL."""

    __slots__ = ("plaintext", "token")

    def __new__(cls, plaintext, token):
        instance = super().__new__(cls, plaintext)
        instance.plaintext = plaintext
        instance.token = token
        return instance


def field_aad(field, record_id):
    """Associated data of a value: the ciphertext opens only in its model, field and record."""
    return f"{field.model_name}|{field.name}|{record_id}".encode()


def legacy_aad(field):
    """Associated data of 1.x ciphertext (``g2pe1.``), bound to model and field only."""
    return f"{field.model_name}|{field.name}".encode()


def value_aad(field, record_id, token):
    return legacy_aad(field) if token.startswith(envelope.PREFIX_V1) else field_aad(field, record_id)


def is_ciphertext(value):
    """Whether a stored value is ciphertext: the addon never stores plaintext of this shape."""
    return isinstance(value, str) and value.startswith(envelope.TOKEN_MARKS)


def decrypt_stored(env, field, pending):
    """{record id: plaintext} of [(record id, stored value)] of ``field``, typed by origin
    (``decrypt_stored_fields`` for one field)."""
    return decrypt_stored_fields(env, {field: pending})[field]


def decrypt_stored_fields(env, pending_by_field):
    """{field: {record id: plaintext}} of {field: [(record id, stored value)]}, typed by origin.

    One batch through the providers' keyrings for every field. Tokens of the KeyManager direct
    mode go to KeyManager. A value that fails authentication (tampered, or moved from another
    record) is ``Unreadable`` and logged (record and field, never the value); a failure of a
    provider (sealed, KeyManager down) fails the whole read with its cause.
    """
    results = {}
    segments = []  # (field, start, end): where the field's tokens are in the batch
    token_ids, tokens, aads = [], [], []
    marks, legacy_mark = envelope.TOKEN_MARKS, envelope.PREFIX_V1
    for field, pending in pending_by_field.items():
        result = results[field] = {}
        sealed = [(rid, raw) for rid, raw in pending if isinstance(raw, str) and raw.startswith(marks)]
        if len(sealed) < len(pending):
            result.update((rid, PlainAtRest(raw)) for rid, raw in pending if not is_ciphertext(raw))
        if not sealed:
            continue
        # The associated data of every value of the field, made from one prefix (model|field|).
        prefix = f"{field.model_name}|{field.name}|".encode()
        legacy = legacy_aad(field)
        start = len(tokens)
        token_ids += [rid for rid, _raw in sealed]
        tokens += [raw for _rid, raw in sealed]
        aads += [legacy if raw.startswith(legacy_mark) else b"%s%d" % (prefix, rid) for rid, raw in sealed]
        segments.append((field, start, len(tokens)))
    if not tokens:
        return results
    opened = env["g2p.encryption.provider"].sudo()._decrypt_stored_values(tokens, aads)
    log = env["g2p.decryption.log"]
    for field, start, end in segments:
        ids, plaintexts = token_ids[start:end], opened[start:end]
        result = results[field]
        if None not in plaintexts:  # the usual case, without a test per value
            result.update(zip(ids, [AtRest(plaintext.decode()) for plaintext in plaintexts], strict=True))
        else:
            unreadable = [
                record_id for record_id, plaintext in zip(ids, plaintexts, strict=True) if plaintext is None
            ]
            placeholder = Unreadable(_("[unreadable]"))
            result.update(
                (record_id, placeholder if plaintext is None else AtRest(plaintext.decode()))
                for record_id, plaintext in zip(ids, plaintexts, strict=True)
            )
            _logger.warning(
                "%s.%s of %s record(s) (ids %s) do not decrypt: tampered, or moved from another record",
                field.model_name,
                field.name,
                len(unreadable),
                ", ".join(map(str, unreadable[:20])),
            )
        log._note_decrypted(field, ids)
        monitoring.count_values("decrypt", field.model_name, len(ids))
    seen = seen_plaintexts(env)
    if seen is not None:
        for opened in results.values():
            seen.add(value for value in opened.values() if type(value) is AtRest)
    return results


# The thread attribute of the external API call a thread serves (encryption_exits.external_api).
EXTERNAL_API = "g2p_external_api"


def seen_plaintexts(env):
    """Where the plaintext that server code decrypts for a person who may not read it is noted
    (``core.redaction``), to strike it out of an error message: the web request's
    (``encryption_exits.IrHttp._dispatch``) or the external API call's (``external_api``)."""
    seen = env.transaction.__dict__.get("g2p_seen_plaintexts")
    if seen is None:
        seen = getattr(getattr(threading.current_thread(), EXTERNAL_API, None), "seen", None)
    return seen


def open_for_read(records, names):
    """Decrypt the stored values of the encrypted fields among ``names`` of ``records`` in one
    batch, before a read formats them: one batch for the read rather than one per field (the
    values found decrypted in the cache are not decrypted again)."""
    if not records._g2p_encrypted:
        return
    env = records.env
    exit_state = env.transaction.__dict__.get("g2p_exit")
    if exit_state is not None and not exit_state.allowed:
        return  # a masked exit decrypts nothing: each value is masked as it is read
    cache = env.cache
    pending_by_field = {}
    for name in names:
        field = records._fields.get(name)
        if not (isinstance(field, EncryptedField) and field.g2p_encrypted and field.store):
            continue
        stored = cache._get_field_cache(records, field)
        pending = [(rid, raw) for rid in records._ids if type(raw := stored.get(rid)) is str and raw]
        if pending:
            pending_by_field[field] = pending
    if not pending_by_field:
        return
    for field, opened in decrypt_stored_fields(env, pending_by_field).items():
        ids = list(opened)
        cache.update_raw(records.browse(ids), field, [opened[rid] for rid in ids], check_dirty=False)


def check_not_masked(field, value):
    """Refuse to store a mask or label an exit gave out: it would replace the data it hides."""
    if isinstance(value, Masked):
        refuse_masked(field)


def refuse_masked(field):
    raise UserError(
        _(
            "%(field)s holds a masked value, which cannot be saved: the real value is "
            "encrypted and this user may not read it.",
            field=field.string,
        )
    )
