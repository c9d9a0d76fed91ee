# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Registry jobs in chunks: planned once, claimed by one runner each, resumable, with true progress."""

import threading
from unittest.mock import patch

import psycopg2

from odoo import SUPERUSER_ID, api, fields, sql_db
from odoo.exceptions import AccessError
from odoo.tests import tagged
from odoo.tools import SQL

from ..core import envelope
from ..models.encryption_job import EncryptionJob
from ..models.encryption_job_chunk import claim_chunk
from ..models.encryption_provider import clear_data_key_cache
from .common import RegistryCase, marker_values

COUNT = 250
BATCH = 40
FIRST = 3000


@tagged("post_install", "-at_install")
class TestJobChunks(RegistryCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partners = cls.registrants_in_the_clear(range(FIRST, FIRST + COUNT))

    def start(self):
        job = self.env["g2p.encryption.job"]._start(self.provider, "encrypt", "res.partner")
        job.batch_size = BATCH
        return job

    def chunks(self, job):
        return job.chunk_ids.sorted("sequence")

    def stored_names(self):
        self.env.flush_all()
        self.env.cr.execute("SELECT name FROM res_partner WHERE id IN %s", (tuple(self.partners.ids),))
        return [row[0] for row in self.env.cr.fetchall()]

    def test_chunks_are_contiguous_disjoint_and_hold_every_record_to_convert(self):
        job = self.start()
        # Starting reads no registrant row (it runs in the request that turns encryption on):
        # the records are counted when the job is planned, in the background.
        self.assertEqual((job.planned, job.total), (False, 0))
        job._plan()
        self.env.cr.execute(SQL("SELECT count(*) FROM (%s) AS candidates", job._candidates_sql()))
        [(candidates,)] = self.env.cr.fetchall()
        self.assertEqual(job.total, candidates)
        chunks = self.chunks(job)
        self.assertEqual(sum(chunks.mapped("records")), job.total)
        self.assertGreaterEqual(job.total, COUNT)
        self.assertEqual(len(chunks), -(-job.total // BATCH))
        self.assertEqual(chunks[0].start_id, 1)
        for previous, chunk in zip(chunks, chunks[1:], strict=False):
            self.assertEqual(chunk.start_id, previous.end_id + 1)
        self.assertTrue(all(chunk.records <= BATCH for chunk in chunks))
        for partner in self.partners:
            holding = chunks.filtered(lambda c, p=partner: c.start_id <= p.id <= c.end_id)
            self.assertEqual(len(holding), 1)

    def test_progress_is_what_the_chunks_did(self):
        job = self.start()
        job._run_batch()
        job._run_batch()
        chunks = self.chunks(job)
        done = chunks.filtered(lambda c: c.state == "done")
        self.assertEqual(len(done), 2)
        self.assertEqual(job.chunks_done, 2)
        self.assertEqual(job.done, sum(done.mapped("done")))
        self.assertEqual(job.last_id, done[-1].end_id)
        self.assertAlmostEqual(job.progress, 200.0 / len(chunks))
        self.assertEqual(job.state, "running")
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.assertEqual(job.state, "done")
        self.assertEqual(job.progress, 100.0)
        self.assertEqual(job.changed, COUNT)
        self.assertEqual(job.done, job.total)
        self.assertEqual(set(self.chunks(job).mapped("attempts")), {1})

    def test_a_runner_killed_half_way_leaves_its_chunk_to_another(self):
        job = self.start()
        job._plan()
        first = self.chunks(job)[0]
        # A runner claims the first chunk and converts it, then dies before it commits: its
        # transaction (here: a savepoint) is rolled back, its lock with it.
        savepoint = self.env.cr.savepoint()
        self.assertEqual(claim_chunk(self.env.cr, job.ids)[0], first.id)
        job._convert(first.start_id, first.end_id)
        savepoint.close(rollback=True)
        self.env.invalidate_all()
        clear_data_key_cache()  # the worker's memory is gone too
        self.assertEqual(first.state, "todo")
        self.assertFalse(any(envelope.is_token(name) for name in self.stored_names()))
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.assertEqual(job.state, "done")
        self.assertTrue(all(envelope.is_token(name) for name in self.stored_names()))
        self.assertEqual(first.attempts, 1)
        self.env.invalidate_all()
        self.assertEqual(self.partners[0].name, marker_values(FIRST)["name"])

    def converting_with(self, failure, on_call):
        """A patch of ``_convert`` that calls ``failure(record)`` at its call number ``on_call``
        (1: the first), and the list of the start ids it was called with."""
        original = EncryptionJob._convert
        calls = []

        def convert(record, start_id, end_id):
            calls.append(start_id)
            if len(calls) == on_call:
                failure(record)
            return original(record, start_id, end_id)

        return patch.object(EncryptionJob, "_convert", convert), calls

    def test_a_failing_chunk_fails_the_job_with_its_cause_and_the_job_resumes(self):
        job = self.start()
        job._plan()

        def keymanager_says_no(_record):
            raise ValueError("KeyManager said no")

        converting, _calls = self.converting_with(keymanager_says_no, on_call=2)
        with converting:
            self.env["g2p.encryption.job"]._run_one_chunk(catch_errors=True)
            self.env["g2p.encryption.job"]._run_one_chunk(catch_errors=True)
        self.assertEqual(job.state, "failed")
        self.assertIn("KeyManager said no", job.message)
        second = self.chunks(job)[1]
        self.assertEqual((second.state, second.attempts), ("todo", 1))
        self.assertIn("KeyManager said no", second.error)
        # What a Crypto Admin sees in the job's form (Registry jobs menu): Resume, and the chunks.
        jobs = self.env["g2p.encryption.job"].with_user(self.crypto_admin)
        form = jobs.get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn('name="action_resume"', form)
        [shown] = jobs.browse(job.id).web_read({"state": {}, "chunk_ids": {"fields": {"error": {}}}})
        self.assertEqual(shown["state"], "failed")
        self.assertIn("KeyManager said no", " ".join(c["error"] or "" for c in shown["chunk_ids"]))
        job.with_user(self.crypto_admin).action_resume()
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.assertEqual(job.state, "done")
        self.assertEqual(job.changed, COUNT)
        self.assertEqual(second.attempts, 2)

    def test_a_chunk_that_meets_a_concurrent_write_is_claimed_again_and_its_job_goes_on(self):
        # A person saved one of the chunk's records while it was converted: PostgreSQL refuses the
        # chunk's UPDATE (serialization failure). Its runner rolls back and claims it again.
        job = self.start()
        job._plan()

        def concurrent_update(record):  # a real one from PostgreSQL, as its UPDATE would get
            record.env.cr.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'concurrent update'"
                " USING ERRCODE = 'serialization_failure'; END $$"
            )

        converting, calls = self.converting_with(concurrent_update, on_call=1)
        with converting:
            with self.assertRaises(psycopg2.errors.SerializationFailure):
                self.env["g2p.encryption.job"]._run_one_chunk(catch_errors=True)
            first = self.chunks(job)[0]
            self.assertEqual(
                (job.state, first.state, first.attempts, first.error), ("running", "todo", 0, False)
            )
            self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.assertEqual(job.state, "done")
        self.assertEqual(job.changed, COUNT)
        self.assertEqual(calls[0], calls[1])

    def test_with_queue_jobs_at_work_the_cron_looks_again_a_minute_later_not_at_once(self):
        # A trigger due now wakes the cron at once, to find every chunk taken by a runner.
        job = self.start()
        job._plan()
        cron = self.env.ref("g2p_encryption.ir_cron_encryption_jobs")
        triggers = self.env["ir.cron.trigger"].sudo()
        jobs = type(self.env["g2p.encryption.job"])
        for queue, earliest in ((False, 0), (True, 60)):
            before = triggers.search([("cron_id", "=", cron.id)])
            with (
                patch.object(jobs, "_queue_available", lambda _self, queue=queue: queue),
                patch.object(jobs, "_ensure_runners", lambda _self: 0),
            ):
                self.env["g2p.encryption.job"]._cron_run_jobs(commit=False, time_budget=0)
            [trigger] = triggers.search([("cron_id", "=", cron.id)]) - before
            delay = (trigger.call_at - fields.Datetime.now()).total_seconds()  # to the second
            self.assertGreaterEqual(delay, earliest - 1, queue)
            self.assertLess(delay, earliest + 5, queue)
        self.assertEqual(job.state, "running")

    def test_only_a_crypto_admin_resumes_a_job(self):
        job = self.start()
        with self.assertRaises(AccessError):
            job.with_user(self.clerk).action_resume()


@tagged("post_install", "-at_install")
class TestChunkClaims(RegistryCase):
    """Claims by concurrent transactions, on real connections: rows are committed (and removed)."""

    def setUp(self):
        super().setUp()
        self.connection = sql_db.db_connect(self.env.cr.dbname)
        with self.connection.cursor() as cr:
            cr.execute(
                """INSERT INTO g2p_encryption_job
                          (provider_id, res_model, kind, state, batch_size, planned, total)
                   VALUES (%s, 'res.partner', 'encrypt', 'running', 10, true, 200) RETURNING id""",
                (self.provider.id,),
            )
            self.job_id = cr.fetchone()[0]
            cr.execute(
                """INSERT INTO g2p_encryption_job_chunk (job_id, sequence, start_id, end_id, records, state,
                                                         done, changed, attempts)
                   SELECT %s, n, n * 10 + 1, n * 10 + 10, 10, 'todo', 0, 0, 0
                     FROM generate_series(0, 19) n""",
                (self.job_id,),
            )
            cr.commit()  # pylint: disable=invalid-commit
        self.addCleanup(self.remove_rows)

    def remove_rows(self):
        self.sql_on_connection("DELETE FROM g2p_encryption_job WHERE id = %s", (self.job_id,))

    def test_the_cron_claims_again_a_chunk_that_met_a_concurrent_write(self):
        # In a transaction of its own, committing each chunk as in production: the first chunk's
        # conversion meets a serialization failure, the cron rolls back and takes it again.
        with self.connection.cursor() as cr:
            cr.execute(
                "SELECT count(*) FROM g2p_encryption_job WHERE state = 'running' AND id != %s", (self.job_id,)
            )
            if cr.fetchone()[0]:  # the cron would run it, committing: not in a test
                self.skipTest("another registry job is running in this database")
            cr.execute("SELECT coalesce(max(id), 0) FROM ir_cron_trigger")
            last_trigger = cr.fetchone()[0]
        self.addCleanup(self.sql_on_connection, "DELETE FROM ir_cron_trigger WHERE id > %s", (last_trigger,))
        calls = []

        def convert(job, start_id, _end_id):
            calls.append(start_id)
            if len(calls) == 1:
                job.env.cr.execute(
                    "DO $$ BEGIN RAISE EXCEPTION 'concurrent update'"
                    " USING ERRCODE = 'serialization_failure'; END $$"
                )
            return 0, 0, []

        def claim_this_job(cr, _job_ids=None):
            return claim_chunk(cr, [self.job_id])

        with (
            patch.object(EncryptionJob, "_convert", convert),
            patch("odoo.addons.g2p_encryption.models.encryption_job_chunk.claim_chunk", claim_this_job),
            self.registry.cursor() as cr,
        ):
            api.Environment(cr, SUPERUSER_ID, {})["g2p.encryption.job"]._cron_run_jobs(
                commit=True, time_budget=30
            )
        self.assertEqual(calls[0], calls[1])
        with self.connection.cursor() as cr:
            cr.execute(
                """SELECT count(*) FILTER (WHERE state = 'done'), min(attempts), max(attempts)
                     FROM g2p_encryption_job_chunk WHERE job_id = %s""",
                (self.job_id,),
            )
            self.assertEqual(cr.fetchone(), (20, 1, 1))
            cr.execute("SELECT state FROM g2p_encryption_job WHERE id = %s", (self.job_id,))
            self.assertEqual(cr.fetchone()[0], "done")

    def sql_on_connection(self, query, params):
        with self.connection.cursor() as cr:
            cr.execute(query, params)
            cr.commit()  # pylint: disable=invalid-commit

    def test_two_open_transactions_never_claim_the_same_chunk(self):
        with self.connection.cursor() as first, self.connection.cursor() as second:
            claimed_first = claim_chunk(first, [self.job_id])
            claimed_second = claim_chunk(second, [self.job_id])
            self.assertNotEqual(claimed_first[0], claimed_second[0])
            first.rollback()  # the first runner dies: its chunk is free again
            self.assertEqual(claim_chunk(first, [self.job_id])[0], claimed_first[0])
            second.rollback()
            first.rollback()

    def test_parallel_runners_take_every_chunk_exactly_once(self):
        taken, errors = [], []
        lock = threading.Lock()

        def runner():
            try:
                with self.connection.cursor() as cr:
                    while True:
                        try:
                            claimed = claim_chunk(cr, [self.job_id])
                        except psycopg2.errors.SerializationFailure:
                            # It read a chunk another runner had just committed: claim again,
                            # as the cron does.
                            cr.rollback()
                            continue
                        if not claimed:
                            break
                        cr.execute(
                            """UPDATE g2p_encryption_job_chunk SET state = 'done', attempts = attempts + 1
                               WHERE id = %s""",
                            (claimed[0],),
                        )
                        cr.commit()  # pylint: disable=invalid-commit
                        with lock:
                            taken.append(claimed[0])
            except Exception as error:  # pylint: disable=broad-except
                errors.append(error)

        threads = [threading.Thread(target=runner) for _runner in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(taken), len(set(taken)))
        with self.connection.cursor() as cr:
            cr.execute(
                """SELECT count(*), count(*) FILTER (WHERE attempts = 1)
                     FROM g2p_encryption_job_chunk WHERE job_id = %s""",
                (self.job_id,),
            )
            total, once = cr.fetchone()
        self.assertEqual((total, once, len(taken)), (20, 20, 20))
