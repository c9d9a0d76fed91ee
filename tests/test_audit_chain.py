# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Tamper-evident audit logs: append-only through the ORM, changes and deletions by SQL detected.

``AuditChainCases`` holds the tests every chained log must pass; a log's test class inherits it
with ``TransactionCase`` and says how to append rows::

    class TestDecryptionLogChain(AuditChainCases, G2PEncryptionCase):
        model = "g2p.decryption.log"
        column = "field_names"          # a hashed text column to tamper with

        def append(self, count):
            for _n in range(count):
                self.env["g2p.decryption.log"]._log_read(...)
            return <the new rows, in order>
"""

import subprocess
import sys
import types
from pathlib import Path
from unittest.mock import patch

import psycopg2

from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, tagged
from odoo.tools import config

from ..models import audit_chain
from .common import G2PEncryptionCase

ADDON_DIR = Path(__file__).resolve().parent.parent


class AuditChainCases:
    """The tests of one chained log (mixed into a TransactionCase; no tests run from here alone)."""

    model = None
    column = None

    def append(self, count):
        raise NotImplementedError

    def log(self):
        return self.env[self.model]

    def problems(self, **kwargs):
        return [(p.kind, p.first, p.last) for p in self.log()._audit_check(**kwargs)["problems"]]

    def sql(self, query, params=()):
        self.env.flush_all()
        self.env.cr.execute(query, params)  # the test's own SQL, tampering as an attacker would
        self.env.invalidate_all()

    def test_rows_are_chained_in_order(self):
        rows = self.append(3)
        sequences = rows.mapped("chain_sequence")
        self.assertEqual(sequences, list(range(sequences[0], sequences[0] + 3)))
        self.assertEqual(rows[1].chain_previous, rows[0].chain_hash)
        self.assertEqual(rows[2].chain_previous, rows[1].chain_hash)
        self.assertEqual(self.problems(), [])

    def test_nobody_changes_or_deletes_a_row_through_the_orm(self):
        rows = self.append(1)
        admin = self.crypto_admin
        # Even an admin who gives himself every right on the log.
        self.env["ir.model.access"].create(
            {
                "name": "self-granted",
                "model_id": self.env["ir.model"]._get_id(self.model),
                "group_id": self.env.ref("g2p_encryption.crypto_admin").id,
                "perm_read": True,
                "perm_write": True,
                "perm_create": True,
                "perm_unlink": True,
            }
        )
        for records in (rows.with_user(admin), rows.sudo()):
            with self.subTest(user=records.env.user.login, su=records.env.su):
                with self.assertRaises(AccessError):
                    records.write({self.column: "nothing happened"})
                with self.assertRaises(AccessError):
                    records.unlink()
                with self.assertRaises(AccessError):
                    records.create({self.column: "forged"})
                with self.assertRaises(AccessError):
                    records.with_context(g2p_internal=True).create({self.column: "forged"})
        self.assertEqual(self.problems(), [])

    def test_a_row_changed_by_sql_is_reported(self):
        rows = self.append(3)
        # Column name from the test class, not from input.
        self.sql(
            f'UPDATE "{self.log()._table}" SET "{self.column}" = %s WHERE id = %s', ("forged", rows[1].id)
        )  # pylint: disable=sql-injection
        self.assertIn(("changed", rows[1].chain_sequence, rows[1].chain_sequence), self.problems())

    def test_a_row_deleted_by_sql_is_reported(self):
        rows = self.append(3)
        sequence = rows[1].chain_sequence
        self.sql(f'DELETE FROM "{self.log()._table}" WHERE id = %s', (rows[1].id,))  # pylint: disable=sql-injection
        self.assertEqual(self.problems(), [("missing", sequence, sequence)])

    def test_the_last_row_deleted_by_sql_is_reported(self):
        rows = self.append(3)
        sequence = rows[2].chain_sequence
        self.sql(f'DELETE FROM "{self.log()._table}" WHERE id = %s', (rows[2].id,))  # pylint: disable=sql-injection
        self.assertEqual(self.problems(), [("missing", sequence, sequence)])

    def test_a_row_inserted_by_sql_is_reported(self):
        rows = self.append(1)
        columns = ", ".join(f'"{name}"' for name in self.log()._audit_chain_fields)
        self.sql(
            f'INSERT INTO "{self.log()._table}" ({columns}) '  # pylint: disable=sql-injection
            f'SELECT {columns} FROM "{self.log()._table}" WHERE id = %s',
            (rows.id,),
        )
        self.assertIn("unchained", [kind for kind, _first, _last in self.problems()])

    def test_appending_after_a_deletion_keeps_it_visible(self):
        rows = self.append(2)
        sequence = rows[1].chain_sequence
        self.sql(f'DELETE FROM "{self.log()._table}" WHERE id = %s', (rows[1].id,))  # pylint: disable=sql-injection
        self.append(1)
        self.assertIn(("missing", sequence, sequence), self.problems())

    def test_the_check_reads_the_log_a_page_at_a_time_and_finds_the_same(self):
        rows = self.append(7)
        columns = ", ".join(f'"{name}"' for name in self.log()._audit_chain_fields)
        table = self.log()._table
        # The test's own tampering, as an attacker's SQL would (names from the test class).
        self.sql(f'UPDATE "{table}" SET "{self.column}" = %s WHERE id = %s', ("forged", rows[2].id))  # pylint: disable=sql-injection
        self.sql(f'DELETE FROM "{table}" WHERE id = %s', (rows[4].id,))  # pylint: disable=sql-injection
        for _copy in range(3):  # rows out of the chain, over more than one page
            self.sql(
                f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{table}" WHERE id = %s',  # pylint: disable=sql-injection
                (rows[0].id,),
            )
        # A row moved before the chain's first place is read too (no lower bound on the first page).
        self.sql(f'UPDATE "{table}" SET chain_sequence = -5 WHERE id = %s', (rows[5].id,))  # pylint: disable=sql-injection
        whole = self.log()._audit_check()
        found = [(p.kind, p.first, p.last) for p in whole["problems"]]
        self.assertIn(("changed", rows[2].chain_sequence, rows[2].chain_sequence), found)
        self.assertEqual(len([kind for kind, _first, _last in found if kind == "unchained"]), 3)
        self.assertIn(-5, [first for _kind, first, _last in found])
        with patch.object(audit_chain, "AUDIT_CHECK_PAGE", 2):
            paged = self.log()._audit_check()
        self.assertEqual((paged["rows"], paged["problems"]), (whole["rows"], whole["problems"]))

    def test_the_check_button_is_for_crypto_admins(self):
        self.append(1)
        result = self.log().with_user(self.crypto_admin).action_audit_check()
        self.assertEqual(result["params"]["type"], "success")
        self.assertIn("head #", result["params"]["message"])
        with self.assertRaises(AccessError):
            self.log().with_user(self.clerk).action_audit_check()
        self.sql(f'DELETE FROM "{self.log()._table}" WHERE id = %s', (self.append(1).id,))  # pylint: disable=sql-injection
        result = self.log().with_user(self.crypto_admin).action_audit_check()
        self.assertEqual(result["params"]["type"], "danger")
        self.assertIn("missing", result["params"]["message"])

    def test_a_recorded_head_exposes_a_rewritten_end(self):
        rows = self.append(3)
        anchor = (rows[2].chain_sequence, rows[2].chain_hash)
        lowered = (rows[1].chain_sequence, rows[1].chain_hash)
        # Delete the last row and move the head back, as someone who knows the scheme would.
        self.sql(f'DELETE FROM "{self.log()._table}" WHERE id = %s', (rows[2].id,))  # pylint: disable=sql-injection
        self.sql(
            "UPDATE g2p_audit_chain_head SET sequence = %s, row_hash = %s WHERE chain = %s",
            (*lowered, self.model),
        )
        self.assertEqual(self.problems(), [])  # the documented limit
        self.assertIn("anchor", [kind for kind, _first, _last in self.problems(anchor=anchor)])


class TestEventChain(AuditChainCases, G2PEncryptionCase):
    model = "g2p.encryption.event"
    column = "detail"

    def append(self, count):
        events = self.env[self.model]
        for number in range(count):
            events |= events._record(self.provider, "seal", detail=f"test event {number}")
        return events

    def test_events_declare_their_hashed_fields(self):
        self.assertIn("detail", self.log()._audit_chain_fields)
        self.assertIn("event", self.log()._audit_chain_fields)

    def test_a_clients_context_sets_no_value_of_a_row(self):
        # Every context key can be sent by a client: a default_* key must not date an event.
        forged = self.env[self.model].with_context(default_date="2001-01-01 00:00:00", default_success=False)
        event = forged._record(self.provider, "seal", detail="forged context")
        self.assertGreater(event.date.year, 2001)
        self.assertTrue(event.success)
        self.assertEqual(self.problems(), [])

    def test_a_missing_head_is_made_again_and_reported_until_then(self):
        self.append(2)
        self.sql("DELETE FROM g2p_audit_chain_head WHERE chain = %s", (self.model,))
        self.assertIn("head", [kind for kind, _first, _last in self.problems()])
        self.append(1)
        self.assertEqual(self.problems(), [])

    def test_operators_run_the_check_from_the_command_line(self):
        # Committed data only is visible to another process: check the database as installed.
        result = subprocess.run(
            [
                sys.executable,
                str(ADDON_DIR / "tools" / "audit_check.py"),
                "--config",
                config.rcfile,
                "--database",
                self.env.cr.dbname,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(self.model, result.stdout)
        self.assertIn("no problem", result.stdout)


class TestDecryptionLogChain(AuditChainCases, G2PEncryptionCase):
    model = "g2p.decryption.log"
    column = "entry_point"

    def test_a_transaction_holding_the_chains_lock_appends_its_pending_rows_itself(self):
        # A migration run from the web client chains rows at once (the chain's lock is then held
        # until its commit) and decrypts. Its rows waiting for the commit must not go to another
        # transaction: that one would wait for this one's lock, and this one for it, for ever.
        log = self.env["g2p.decryption.log"]
        before = log.search([], order="id desc", limit=1).id or 0
        log._write_row("server", "/test/migration", "res.partner", {"name"}, [], 1)  # at once
        setattr(self.env.transaction, audit_chain.SCHEDULED, True)  # beside others from now on
        self.addCleanup(delattr, self.env.transaction, audit_chain.SCHEDULED)
        log._write_row("server", "/test/migration", "res.partner", {"email"}, [], 1)  # waits
        self.assertEqual(log.search_count([("id", ">", before)]), 1)
        refuse = AssertionError("appended apart while this transaction holds the chain's lock")
        with patch.object(type(log), "_append_apart", side_effect=refuse):
            self.env.cr.precommit.run()
        rows = log.search([("id", ">", before)], order="id")
        self.assertEqual(rows.mapped("field_names"), ["name", "email"])
        self.assertEqual(rows[1].chain_previous, rows[0].chain_hash)
        self.assertEqual(self.problems(), [])

    def append(self, count):
        log = self.env[self.model]
        before = log.search([], order="id desc", limit=1).id or 0
        for number in range(count):
            log._write_row("exit", f"/test/{number}", "res.partner", {"name"}, [number + 1])
        return log.search([("id", ">", before)], order="id")


@tagged("post_install", "-at_install")
class TestConcurrentAppends(TransactionCase):
    def test_requests_committing_at_once_append_without_failing_to_serialise(self):
        # Two requests have read (their snapshots are taken), then commit one after the other: the
        # second must chain its row after the first's, not fail on the head the first moved (which
        # made Odoo replay the request after a sleep). The rows are committed for real, at the end
        # of the chain, and left there: the chain stays whole. (A class of its own: a test class
        # whose transaction began before that commit could not append to this chain any more.)
        entry = f"/test/concurrent/{self.env.cr.now().timestamp()}"
        rows = [
            {
                "user_id": self.env.uid,
                "kind": "exit",
                "entry_point": entry,
                "res_model": "res.partner",
                "field_names": "name",
                "res_ids": str(number),
                "record_count": 1,
            }
            for number in (1, 2)
        ]
        with self.registry.cursor() as first, self.registry.cursor() as second:
            for cr in (first, second):
                cr.execute("SELECT count(*) FROM res_partner")  # the snapshot of a request
            for cr, row in zip((first, second), rows, strict=True):
                self.env(cr=cr)["g2p.decryption.log"]._append_apart([row])
        with self.registry.cursor() as cr:
            log = self.env(cr=cr)["g2p.decryption.log"]
            appended = log.search([("entry_point", "=", entry)], order="chain_sequence")
            self.assertEqual(appended.mapped("res_ids"), ["1", "2"])
            self.assertEqual(appended[1].chain_previous, appended[0].chain_hash)
            self.assertEqual(log._audit_check()["problems"], [])

    def test_an_append_that_fails_leaves_its_connection_clean_and_the_chain_whole(self):
        # The append's own statements open and commit its transaction (the connection is in
        # autocommit meanwhile): one that fails half-way must roll back, so that the connection
        # goes back to the pool usable and in its usual mode, and no half row stays.
        entry = f"/test/failed-append/{self.env.cr.now().timestamp()}"
        row = {
            "user_id": self.env.uid,
            "kind": "exit",
            "entry_point": entry,
            "res_model": "res.partner",
            "field_names": "name",
            "record_count": 1,
        }
        log = self.env["g2p.decryption.log"]
        with (
            patch.object(audit_chain.audit_chain, "chain_rows", side_effect=RuntimeError("broken")),
            self.assertRaises(RuntimeError),
        ):
            log._append_apart([dict(row, res_ids="1")])
        log._append_apart([dict(row, res_ids="2")])
        with self.registry.cursor() as cr:
            self.assertFalse(cr.connection.autocommit)
            cr.execute("SELECT 1")  # a transaction of Odoo's usual kind opens on it
            log = self.env(cr=cr)["g2p.decryption.log"]
            self.assertEqual(log.search([("entry_point", "=", entry)]).mapped("res_ids"), ["2"])
            self.assertEqual(log._audit_check()["problems"], [])

    def test_a_connection_whose_append_cannot_be_ended_is_closed_not_pooled(self):
        # The append's transaction is opened by a statement, unknown to psycopg2: were its end to
        # fail and the connection go back to the pool, the next borrower would run inside it,
        # holding the chain's lock. Such a connection is closed; the server then ends it.
        lock = 0x6732705F  # an advisory lock standing for the chain's
        cr = self.registry.cursor()
        try:
            cr.connection.autocommit = True
            cr._obj.execute("BEGIN; SELECT pg_advisory_xact_lock(%s)", (lock,))

            class RefusingCursor:  # the database refuses the statement that ends the transaction
                def execute(self, statement):
                    raise psycopg2.OperationalError(f"{statement} refused")

            ending = types.SimpleNamespace(connection=cr.connection, _obj=RefusingCursor())
            with self.assertLogs("odoo.addons.g2p_encryption.models.audit_chain", "WARNING"):
                with self.assertRaises(psycopg2.OperationalError):
                    audit_chain._end_transaction(ending, "ROLLBACK")
            self.assertTrue(cr.connection.closed)
        finally:
            if not cr.connection.closed:  # never to the pool inside the lock's transaction
                cr.connection.close()
            cr.close()
        with self.registry.cursor() as other:  # released when the server has ended the backend
            other.execute("SET LOCAL lock_timeout = '10s'; SELECT pg_advisory_xact_lock(%s)", (lock,))

    def test_a_scheduled_action_committing_after_a_request_appends_without_failing_to_serialise(self):
        # A scheduled action (a registry job's chunk on ir.cron) decrypts for a while; meanwhile a
        # request shows plaintext and commits its row. When the action commits, its own row must
        # join the chain after the request's: appended from the action's older snapshot, it failed
        # to serialise, and the chunk's work was lost, again at every try while people read.
        name = f"g2p test scheduled action {self.env.cr.now().timestamp()}"
        code = "env['g2p.decryption.log']._note_decrypted(env['res.partner']._fields['name'], [1, 2])"
        with self.registry.cursor() as cr:  # the action the scheduler runs, committed
            action = self.env(cr=cr)["ir.actions.server"].create(
                {
                    "name": name,
                    "model_id": self.env.ref("base.model_res_partner").id,
                    "state": "code",
                    "code": code,
                }
            )
        try:
            with self.registry.cursor() as job:
                job.execute("SELECT count(*) FROM res_partner")  # the job's snapshot
                row = {
                    "user_id": self.env.uid,
                    "kind": "exit",
                    "entry_point": f"/test/{name}",
                    "res_model": "res.partner",
                    "field_names": "name",
                    "record_count": 1,
                }
                self.env["g2p.decryption.log"]._append_apart([row])  # a request's, committed
                self.env(cr=job)["ir.cron"]._callback(name, action.id, 0)
            with self.registry.cursor() as cr:
                log = self.env(cr=cr)["g2p.decryption.log"]
                rows = log.search([("entry_point", "in", [f"/test/{name}", f"cron: {name}"])], order="id")
                self.assertEqual(rows.mapped("kind"), ["exit", "server"])
                self.assertEqual(rows[1].record_count, 2)
                self.assertEqual(rows[1].chain_previous, rows[0].chain_hash)
                self.assertEqual(log._audit_check()["problems"], [])
        finally:
            with self.registry.cursor() as cr:
                self.env(cr=cr)["ir.actions.server"].browse(action.id).unlink()


class TestSearchLogChain(AuditChainCases, G2PEncryptionCase):
    model = "g2p.search.log"
    column = "field_name"

    def append(self, count):
        log = self.env[self.model]
        vals = {"user_id": self.env.uid, "res_model": "res.partner", "field_name": "email", "value_count": 1}
        return log.browse([log._log(vals, 1).id for _number in range(count)])
