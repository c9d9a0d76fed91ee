# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Tamper-evident audit rows: append-only through the ORM, each row's hash chained to the last.

A log inherits ``g2p.audit.chain`` and names the fields its hash covers::

    class MyLog(models.Model):
        _name = "my.log"
        _inherit = ["g2p.audit.chain"]
        _audit_chain_fields = ("date", "user_id", "detail")

    self.env["my.log"]._append([{"user_id": uid, "detail": "..."}])

* Rows are added only by ``_append`` (any other ``create`` raises), and ``write`` and deletion
  raise for everybody, ``sudo`` included, and whatever access rights an admin grants himself
  (uninstalling the addon drops the table).
* Each append takes a transaction-level advisory lock on the log, then locks its head row (the
  last sequence and digest, in ``g2p.audit.chain.head``) and chains the new rows after it
  (``core/audit_chain.py``). The lock is held until the commit: two transactions appending at
  once are serialised. A transaction whose snapshot predates the other's commit fails to
  serialise and is replayed by Odoo; rows a request writes when it commits are therefore appended
  in a transaction of their own (``_append_apart``), which waits and never fails so:
  ``_append_at_commit`` does it for the rows of requests and scheduled actions that may say more
  than happened, never less (the decryption log).
* ``_audit_check()`` reads the rows and the head with SQL and reports rows changed, deleted
  (the last ones too, while the head stands) or inserted outside the chain: the button *Check
  integrity* on the log (Crypto Admin) and ``tools/audit_check.py`` (operators) run it.
"""

import contextlib
import functools
import hashlib
import logging

from psycopg2.extensions import TRANSACTION_STATUS_IDLE

from odoo import _, api, fields, http, models, sql_db
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL
from odoo.tools.misc import clean_context

from ..core import audit_chain
from .rpc_guard import CRYPTO_ADMIN, internal, is_internal, requires

_logger = logging.getLogger(__name__)

CHAIN_FIELDS = ("chain_sequence", "chain_previous", "chain_hash")
AUDIT_CHECK_PAGE = 5000  # rows read at a time by the integrity check
# Set on the transaction of a scheduled action (``ir.cron._callback``).
SCHEDULED = "g2p_scheduled"
# Set on the cursor of an append whose statements open and commit its transaction.
STATEMENT_TRANSACTION = "_g2p_statement_transaction"


def _held_locks(cr):
    """Names of the chains whose lock the cursor's transaction holds (until it ends)."""
    held = cr.__dict__.get("_g2p_chain_locks")
    if held is None:
        held = cr.__dict__["_g2p_chain_locks"] = set()
        forget = functools.partial(cr.__dict__.pop, "_g2p_chain_locks", None)
        cr.postcommit.add(forget)
        cr.postrollback.add(forget)
    return held


@contextlib.contextmanager
def _transaction_in_statements(cr):
    """Run an append on ``cr`` (a connection of its own) in a transaction that reads committed
    data, opened by the statement that locks the chain and committed by the one that inserts:
    an append is on the path of every request that shows plaintext, and this saves it two round
    trips (psycopg2 would send ``BEGIN`` and ``COMMIT`` each on its own)."""
    connection = cr.connection
    connection.autocommit = True
    cr.__dict__[STATEMENT_TRANSACTION] = "begin"
    try:
        yield
        _end_transaction(cr, "COMMIT")  # a safety net: the insert's statement commits
    except BaseException:
        with contextlib.suppress(Exception):  # logged; the append's own error says what failed
            _end_transaction(cr, "ROLLBACK")
        raise
    finally:
        cr.__dict__.pop(STATEMENT_TRANSACTION, None)
        if not connection.closed:
            connection.autocommit = False


def _end_transaction(cr, statement):
    """End the transaction open on ``cr``'s connection, if any, with ``statement``. psycopg2 does
    not know of a transaction opened by a statement: a connection where ending it fails is
    closed, or the pool would hand it out still inside it, holding the chain's lock."""
    connection = cr.connection
    if connection.closed or connection.info.transaction_status == TRANSACTION_STATUS_IDLE:
        return
    try:
        cr._obj.execute(statement)
    except BaseException as error:
        if connection.closed or connection.info.transaction_status != TRANSACTION_STATUS_IDLE:
            _logger.warning(
                "audit chain: %s of an append failed (%s); its connection is closed", statement, error
            )
            connection.close()
        raise


def _statement_transaction_step(cr, step):
    """Whether ``cr``'s transaction is due to take ``step`` ("begin", "commit") in the next
    statement (``_transaction_in_statements``); the step is then taken."""
    if cr.__dict__.get(STATEMENT_TRANSACTION) != step:
        return False
    cr.__dict__[STATEMENT_TRANSACTION] = "commit" if step == "begin" else "done"
    return True


def beside_others(env):
    """Whether this transaction runs beside others that append (a request, a scheduled action),
    so that locking the chain's head from its snapshot may fail to serialise."""
    return bool(http.request) or bool(env.transaction.__dict__.get(SCHEDULED))


def column_value(field, value):
    """``value`` of ``field`` in the form PostgreSQL returns it from the column: what a row's
    digest covers when the row is inserted, and what the check reads back."""
    if value is None or (value is False and field.type != "boolean"):
        return None
    if field.type == "datetime":
        return fields.Datetime.to_datetime(value)
    if field.type == "date":
        return fields.Date.to_date(value)
    if field.type == "boolean":
        return bool(value)
    if field.type in ("integer", "many2one"):
        return value.id if isinstance(value, models.BaseModel) else int(value)
    if field.type in ("char", "text", "selection"):
        return str(value)
    raise TypeError(f"{field} cannot be a column of an audit chain row")


class AuditChainHead(models.Model):
    _name = "g2p.audit.chain.head"
    _description = "Head of an Audit Chain"
    _log_access = False

    # Written and read with SQL by the chain only; nobody has access to it through the ORM.
    chain = fields.Char(required=True, readonly=True)
    sequence = fields.Integer(readonly=True)
    row_hash = fields.Char(readonly=True)

    _sql_constraints = [("chain_unique", "unique(chain)", "One head per audit chain.")]


class AuditChain(models.AbstractModel):
    _name = "g2p.audit.chain"
    _description = "Tamper-evident Audit Rows"
    # The fields whose values the hash covers; a log lists its own (stored fields only).
    _audit_chain_fields = ()

    chain_sequence = fields.Integer(string="Chain #", readonly=True, copy=False, index=True)
    chain_previous = fields.Char(string="Previous hash", readonly=True, copy=False)
    chain_hash = fields.Char(string="Hash", readonly=True, copy=False)

    @api.model
    def _setup_complete(self):
        super()._setup_complete()
        if self._abstract:
            return
        wrong = [
            name
            for name in self._audit_chain_fields
            if name not in self._fields or not self._fields[name].store or name in CHAIN_FIELDS
        ]
        if wrong or not self._audit_chain_fields:
            raise TypeError(
                f"{self._name}: _audit_chain_fields must name stored fields of the model "
                f"(wrong: {', '.join(wrong) or 'none given'})"
            )

    def init(self):
        result = super().init()
        if not self._abstract:
            self.env.cr.execute(
                """INSERT INTO g2p_audit_chain_head (chain, sequence, row_hash) VALUES (%s, 0, %s)
                   ON CONFLICT (chain) DO NOTHING""",
                (self._name, audit_chain.GENESIS),
            )
        return result

    # Append only ------------------------------------------------------------------------------
    @api.model
    def _append(self, vals_list):
        """Add rows at the end of the chain; the only way rows are made."""
        return internal(self.sudo()).create(vals_list)

    @api.model
    def _append_apart(self, vals_list):
        """``_append`` in a transaction of its own, committed at once, that reads committed data.

        For the rows a request writes when it commits: its snapshot is older than the head that
        other requests moved meanwhile, and locking the head from it fails to serialise (Odoo then
        replays the whole request after a sleep: under load, most of the time went there). Here a
        request waits for the other's append, no more. The rows stay even if the request's own
        commit then fails: the log may say more than was shown, never less. (In Odoo's HTTP test
        mode the cursor is the test's own.)"""
        with self.env.registry.cursor() as cr:
            chain = self.with_env(self.env(cr=cr))
            if not isinstance(cr, sql_db.Cursor):
                chain._append(vals_list)
                return
            with _transaction_in_statements(cr):
                chain._append(vals_list)

    @api.model
    def _append_at_commit(self, vals_list):
        """Rows of what this transaction does, appended with its pre-commit hooks.

        Beside other transactions (``beside_others``), they join the chain in a transaction of
        their own when this one runs its pre-commit hooks (``_append_apart``; Odoo runs them at
        the commit and at each savepoint): transactions that log at once wait for one another's
        append only, neither for the whole transaction (an append holds the chain's lock until
        its commit) nor for a replay of it. A transaction that rolls back before them writes none;
        one that fails after them (or is replayed) leaves its rows: a log written so may say more
        than happened, never less. Alone (a shell, a script), they are appended at once, and so
        they are by a transaction that holds the chain's lock already (it appended at once).
        """
        if not beside_others(self.env):
            self._append(vals_list)
            return
        self._pending_rows().extend(vals_list)

    def _pending_rows(self):
        """The rows of this transaction waiting for its commit (kept with its pre-commit hooks:
        dropped with them when it rolls back)."""
        precommit = self.env.cr.precommit
        rows = precommit.data.get(self._pending_key())
        if rows is None:
            rows = precommit.data[self._pending_key()] = []
            precommit.add(self._append_pending)
        return rows

    def _pending_key(self):
        return f"g2p_chain_rows {self._name}"

    def _append_pending(self):
        rows = self.env.cr.precommit.data.pop(self._pending_key(), None)
        if not rows:
            return
        if self._name in _held_locks(self.env.cr):
            # This transaction appended at once before (a migration chaining old rows, run from
            # the web client): another transaction would wait for its lock, and it for that one.
            self._append(rows)
            return
        self._append_apart(rows)

    @api.model_create_multi
    def create(self, vals_list):  # pylint: disable=method-required-super
        if not is_internal(self):
            raise AccessError(
                _("%(log)s rows are written by the addon itself, never by hand.", log=self._description)
            )
        if any(set(vals) & set(CHAIN_FIELDS) for vals in vals_list):
            raise AccessError(_("The place of a row in its audit chain is set by the chain."))
        return self.browse(self._insert_chained(vals_list))

    def _insert_chained(self, vals_list):
        """Insert rows already chained, with SQL; return their ids.

        A row is written on every request that shows plaintext, so this takes two round trips:
        one locks the head and reserves the ids, one inserts the rows with their links and moves
        the head (the ORM's create, a read of the values and an update of each row cost most of
        such a request's audit). The digests cover the values as PostgreSQL returns them
        (``column_value``); the integrity check reads them back. Log models hold plain columns
        only: nothing computed or related to keep up to date.
        """
        columns = {
            name: field
            for name, field in self._fields.items()
            if field.store and field.column_type and name != "id" and name not in CHAIN_FIELDS
        }
        unknown = set().union(*vals_list) - set(columns)
        if unknown:
            raise ValueError(f"{self._name} has no column {', '.join(sorted(unknown))}")
        missing = [
            name
            for name in columns
            if name not in models.MAGIC_COLUMNS and any(name not in vals for vals in vals_list)
        ]
        # What a row does not give comes from the fields' defaults, never from a client's context.
        clean = self.with_env(self.env(context=clean_context(self.env.context)))
        defaults = clean.default_get(missing) if missing else {}
        head, ids, now = self._chain_head(reserve=len(vals_list))
        if self._log_access:
            defaults.update(create_uid=self.env.uid, create_date=now, write_uid=self.env.uid, write_date=now)
        rows = [
            {name: column_value(field, dict(defaults, **vals).get(name)) for name, field in columns.items()}
            for vals in vals_list
        ]
        links, (sequence, digest) = audit_chain.chain_rows(
            self._name,
            [
                (row_id, {name: row[name] for name in self._audit_chain_fields})
                for row_id, row in zip(ids, rows, strict=True)
            ],
            head,
        )
        names = list(columns)
        values = [
            SQL(
                "(%s)",
                SQL(", ").join([row_id, *(row[name] for name in names), row_sequence, previous, row_digest]),
            )
            for (row_id, row_sequence, previous, row_digest), row in zip(links, rows, strict=True)
        ]
        self.env.cr.execute(
            SQL(
                "WITH head AS ("
                " UPDATE g2p_audit_chain_head SET sequence = %s, row_hash = %s WHERE chain = %s"
                ") INSERT INTO %s (%s) VALUES %s%s",
                sequence,
                digest,
                self._name,
                SQL.identifier(self._table),
                SQL(", ").join(map(SQL.identifier, ["id", *names, *CHAIN_FIELDS])),
                SQL(", ").join(values),
                SQL("; COMMIT") if _statement_transaction_step(self.env.cr, "commit") else SQL(),
            )
        )
        return ids

    def write(self, vals):  # pylint: disable=method-required-super
        raise AccessError(_("%(log)s rows are never changed.", log=self._description))

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        raise AccessError(_("%(log)s rows are never deleted.", log=self._description))

    def _chain_lock_id(self):
        digest = hashlib.sha256(f"g2p audit chain {self._name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def _chain_values(self, ids):
        """{row id: {field: stored value}} of the hashed fields, read with SQL as the check does."""
        if not ids:
            return {}
        columns = ", ".join(f'"{name}"' for name in self._audit_chain_fields)
        # Column and table names come from the model's own declaration, validated at set-up.
        self.env.cr.execute(
            f'SELECT id, {columns} FROM "{self._table}" WHERE id IN %s',  # pylint: disable=sql-injection
            (tuple(ids),),
        )
        return {
            row[0]: dict(zip(self._audit_chain_fields, row[1:], strict=True))
            for row in self.env.cr.fetchall()
        }

    def _chain_head(self, reserve=0):
        """Lock the head and return ``((sequence, digest), ids, now)``: ``ids`` the ``reserve``
        ids of new rows, ``now`` the transaction's time in UTC (the rows' date, as ``cr.now()``),
        all in one round trip. Recreate the head from the rows if it is gone."""
        cr = self.env.cr
        # Two statements in one round trip (the lock first); the result is the second's.
        begin = _statement_transaction_step(cr, "begin")
        cr.execute(
            SQL(
                "%s SELECT pg_advisory_xact_lock(%s); "
                "SELECT sequence, row_hash, "
                "ARRAY(SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)), "
                "now() AT TIME ZONE 'UTC' "
                "FROM g2p_audit_chain_head WHERE chain = %s FOR UPDATE",
                SQL("BEGIN ISOLATION LEVEL READ COMMITTED;") if begin else SQL(),
                self._chain_lock_id(),
                self._table,
                reserve,
                self._name,
            )
        )
        _held_locks(cr).add(self._name)
        row = cr.fetchone()
        if row:
            return (row[0], row[1]), row[2], row[3]
        self._remake_head()
        return self._chain_head(reserve)

    def _remake_head(self):
        """Make the head again from the last chained row (it was deleted)."""
        cr = self.env.cr
        cr.execute(
            f'SELECT chain_sequence, chain_hash FROM "{self._table}" '  # pylint: disable=sql-injection
            "WHERE chain_sequence IS NOT NULL ORDER BY chain_sequence DESC LIMIT 1"
        )
        last = cr.fetchone() or (0, audit_chain.GENESIS)
        _logger.warning(
            "The head of the audit chain %s was missing: made again from its last row (#%s). Rows "
            "deleted at the end before now cannot be detected.",
            self._name,
            last[0],
        )
        cr.execute(
            "INSERT INTO g2p_audit_chain_head (chain, sequence, row_hash) VALUES (%s, %s, %s)",
            (self._name, last[0], last[1]),
        )

    def _chain(self):
        """Give these rows, stored without a place, their place, previous digest and digest."""
        self.flush_recordset()
        values = self._chain_values(self.ids)
        self._link([(row_id, values[row_id]) for row_id in sorted(self.ids)])
        self.invalidate_recordset(list(CHAIN_FIELDS))

    @api.model
    def _link(self, rows):
        """Chain ``[(row id, stored values)]`` after the head, in that order: one UPDATE sets the
        rows' links and moves the head."""
        links, (sequence, digest) = audit_chain.chain_rows(self._name, rows, self._chain_head()[0])
        row_ids, sequences, previous, digests = (list(column) for column in zip(*links, strict=True))
        self.env.cr.execute(
            SQL(
                "WITH head AS ("
                " UPDATE g2p_audit_chain_head SET sequence = %s, row_hash = %s WHERE chain = %s"
                ") UPDATE %s AS t"
                " SET chain_sequence = v.sequence, chain_previous = v.previous, chain_hash = v.digest"
                " FROM unnest(%s::int[], %s::int[], %s::varchar[], %s::varchar[])"
                " AS v(id, sequence, previous, digest) WHERE t.id = v.id AND t.id = ANY(%s::int[])",
                sequence,
                digest,
                self._name,
                SQL.identifier(self._table),
                row_ids,
                sequences,
                previous,
                digests,
                row_ids,  # the rows found by their key, as in _g2p_update_columns
            )
        )

    def _chain_unchained(self):
        """Chain the rows that have no place yet, in id order (rows from before the chain existed)."""
        self.env.cr.execute(
            f'SELECT id FROM "{self._table}" WHERE chain_sequence IS NULL ORDER BY id'  # pylint: disable=sql-injection
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        if ids:
            self.browse(ids)._chain()
        return len(ids)

    # The check ---------------------------------------------------------------------------------
    @api.model
    def _audit_check(self, anchor=None):
        """Check the whole chain with SQL; return ``{"chain", "rows", "head", "problems"}``.

        ``anchor``: a ``(sequence, digest)`` recorded earlier outside the database, if any.
        ``problems`` are ``core.audit_chain.Problem``; ``describe`` turns each into a sentence.
        """
        self.env.flush_all()
        cr = self.env.cr
        cr.execute("SELECT sequence, row_hash FROM g2p_audit_chain_head WHERE chain = %s", (self._name,))
        head = cr.fetchone()
        head = tuple(head) if head else None
        columns = ", ".join(f'"{name}"' for name in self._audit_chain_fields)
        select = f'SELECT id, chain_sequence, chain_previous, chain_hash, {columns} FROM "{self._table}"'
        counted = [0]

        def pages():
            # A page at a time, by key (rows out of the chain by id, then the chain's rows by place
            # and id: the order verify_sorted expects): Odoo's cursor holds a whole result in the
            # worker's memory, and a decryption log grows by a row per request that shows data.
            # The first page has no lower bound: any value a tampered row holds is read.
            for first, after, order, key in (
                ("chain_sequence IS NULL", "chain_sequence IS NULL AND id > %s", "id", lambda row: (row[0],)),
                (
                    "chain_sequence IS NOT NULL",
                    "(chain_sequence, id) > (%s, %s)",
                    "chain_sequence, id",
                    lambda row: (row[1], row[0]),
                ),
            ):
                where, last = first, ()
                while True:
                    query = f"{select} WHERE {where} ORDER BY {order} LIMIT %s"
                    cr.execute(query, (*last, AUDIT_CHECK_PAGE))  # pylint: disable=sql-injection
                    batch = cr.fetchall()
                    yield from batch
                    if len(batch) < AUDIT_CHECK_PAGE:
                        break
                    where, last = after, key(batch[-1])

        def rows():
            for row_id, sequence, previous, digest, *row_values in pages():
                counted[0] += 1
                values = dict(zip(self._audit_chain_fields, row_values, strict=True))
                yield audit_chain.Row(row_id, sequence, previous, digest, values)

        problems = audit_chain.verify_sorted(self._name, rows(), head, anchor=anchor)
        return {"chain": self._name, "rows": counted[0], "head": head, "problems": problems}

    @api.model
    def _describe_problem(self, problem):
        """One sentence about a problem the check found (translated)."""
        kind, first, last, row_id = problem
        span = str(first) if first == last else f"{first}-{last}"
        if kind == "changed":
            return _("Row #%(number)s (id %(id)s) was changed after it was written.", number=span, id=row_id)
        if kind == "missing":
            return _("Rows #%(numbers)s are missing: deleted.", numbers=span)
        if kind == "unchained":
            return _("Row id %(id)s has no place in the chain: it was inserted around the addon.", id=row_id)
        if kind == "duplicate":
            return _(
                "Row id %(id)s claims place #%(number)s, which another row holds.", id=row_id, number=span
            )
        if kind == "anchor":
            return _("The head recorded earlier (#%(number)s) is not in the chain any more.", number=span)
        return _(
            "The head of the chain (#%(head)s) does not match its last row (#%(last)s): rows were "
            "changed, added or removed at the end.",
            head=first,
            last=last,
        )

    @api.model
    def _audit_report(self, result):
        """The check's result as text: one line of summary, then one line per problem."""
        head = result["head"]
        summary = _(
            "%(log)s: %(rows)s rows; head #%(sequence)s %(digest)s.",
            log=self._description,
            rows=result["rows"],
            sequence=head[0] if head else "?",
            digest=head[1] if head else _("missing"),
        )
        lines = [summary] + [self._describe_problem(problem) for problem in result["problems"]]
        return "\n".join(lines)

    @requires(CRYPTO_ADMIN)
    def action_audit_check(self):
        """Check this log's whole chain (whatever rows are selected) and show the result (Crypto Admin)."""
        if self._abstract:
            raise UserError(_("Check a log, not the audit chain itself."))
        result = self.sudo()._audit_check()
        report = self._audit_report(result)
        if result["problems"]:
            _logger.warning("Audit chain check found problems: %s", report.replace("\n", " | "))
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("Integrity check failed") if result["problems"] else _("Integrity check passed"),
                "message": report,
                "type": "danger" if result["problems"] else "success",
                "sticky": bool(result["problems"]),
            },
        }
