# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Faults of KeyManager and Keycloak: each gives a clear error naming its cause, a log line,
and stores no plaintext (or, for an expired token, succeeds after one renewal)."""

import logging

from odoo.exceptions import UserError

from ..core.cache import clear_all
from ..core.errors import DecryptionError, ServiceUnavailableError
from ..core.keycloak import TokenFetcher
from ..exceptions import RemoteServiceUserError, UndecryptableUserError
from ..models.encryption_provider import clear_data_key_cache
from .common import KeyManagerCase, database_text, encrypt_values, marker_fragments, marker_values

LOGGER = "odoo.addons.g2p_encryption"


class TestKeyManagerFaults(KeyManagerCase):
    def assertRegistrantNotStored(self, number, provider=None):
        """Creating a registrant fails with UserError and leaves no trace of its values."""
        self.use_as_registry_provider(provider or self.km_provider)
        with self.assertRaises(UserError) as caught:
            with self.env.cr.savepoint():
                self.env["res.partner"].create(dict(marker_values(number), is_registrant=True))
        dump = database_text(self.env.cr).lower()
        for fragment in marker_fragments(number):
            self.assertNotIn(fragment.lower(), dump)
        return str(caught.exception)

    def assertFailsNamingTheCause(self, pattern, cause, number):
        """Encrypting fails with ``pattern``, logging ``cause``; so does a registrant's create, which
        stores nothing."""
        with self.assertLogs(LOGGER, level=logging.WARNING) as logs:
            with self.assertRaisesRegex(UserError, pattern):
                self.km_provider.encrypt_data(b"Grace Otieno")
        self.assertLogged(logs, cause)
        with self.assertLogs(LOGGER, level=logging.WARNING):
            message = self.assertRegistrantNotStored(number)
        self.assertIn(cause, message)

    def assertLogged(self, logs, *fragments):
        text = "\n".join(logs.output)
        for fragment in fragments:
            self.assertIn(fragment, text)

    def test_keymanager_down(self):
        self.km_provider._keymanager_client().token_fetcher.get_token()  # Keycloak answered earlier
        self.emulator.faults.go_down("refuse")
        self.assertFailsNamingTheCause(
            "KeyManager /encrypt: cannot reach 127.0.0.1:\\d+: connection refused", "connection refused", 1
        )

    def test_errors_reach_the_caller_with_their_type(self):
        self.km_provider._keymanager_client().token_fetcher.get_token()  # Keycloak answered earlier
        self.emulator.faults.go_down("refuse")
        with self.assertLogs(LOGGER, level=logging.WARNING):
            with self.assertRaises(RemoteServiceUserError) as caught:
                self.km_provider.encrypt_data(b"Grace Otieno")
        error = caught.exception.error
        self.assertIsInstance(error, ServiceUnavailableError)
        self.assertEqual((error.service, error.endpoint), ("KeyManager", "/encrypt"))
        self.emulator.faults.clear()
        token = self.km_provider.encrypt_data(b"Grace Otieno", aad=b"res.partner|name")
        with self.assertRaises(UndecryptableUserError) as caught:
            self.km_provider.decrypt_data(token, aad=b"res.partner|email")
        self.assertIsInstance(caught.exception.error, DecryptionError)

    def test_keymanager_closing_connections(self):
        self.km_provider.encrypt_data(b"warm")  # token and data key cached
        clear_data_key_cache()
        self.emulator.faults.go_down("close")
        with self.assertLogs(LOGGER, level=logging.WARNING) as logs:
            with self.assertRaisesRegex(UserError, "KeyManager /decrypt"):
                self.km_provider.encrypt_data(b"Grace Otieno")
        self.assertLogged(logs, "/decrypt")

    def test_5xx_is_retried_then_succeeds(self):
        self.emulator.faults.fail_next(1, 503, endpoint="/encrypt")
        with self.assertLogs(LOGGER, level=logging.WARNING) as logs:
            token = self.km_provider.encrypt_data(b"Grace Otieno")
        self.assertEqual(self.km_provider.decrypt_data(token), b"Grace Otieno")
        self.assertEqual(self.km_counts().get("/encrypt"), 2)
        self.assertLogged(logs, "KeyManager /encrypt answered 503")

    def test_persistent_5xx_names_the_http_status(self):
        self.emulator.faults.fail_next(10, 500, endpoint="/encrypt")
        with self.assertLogs(LOGGER, level=logging.WARNING) as logs:
            with self.assertRaisesRegex(UserError, r"KeyManager /encrypt \(HTTP 500"):
                self.km_provider.encrypt_data(b"Grace Otieno")
        self.assertEqual(self.km_counts().get("/encrypt"), 2)  # one try and one retry
        self.assertLogged(logs, "answered 500")
        self.emulator.faults.clear()
        self.emulator.faults.fail_next(10, 502)
        with self.assertLogs(LOGGER, level=logging.WARNING):
            message = self.assertRegistrantNotStored(2)
        self.assertIn("HTTP 502", message)

    def test_errors_in_a_200_answer_name_the_ker_code(self):
        self.emulator.faults.error_next(
            5, "KER-KMS-002", "ApplicationId not found in Key Policy. Key/CSR generation not allowed."
        )
        with self.assertLogs(LOGGER, level=logging.WARNING) as logs:
            with self.assertRaisesRegex(
                UserError, r"KeyManager /encrypt \(HTTP 200, KER-KMS-002\): ApplicationId"
            ):
                self.km_provider.encrypt_data(b"Grace Otieno")
        self.assertEqual(self.km_counts().get("/encrypt"), 1)  # a business error is not retried
        self.assertLogged(logs, "KER-KMS-002")
        with self.assertLogs(LOGGER, level=logging.WARNING):
            message = self.assertRegistrantNotStored(3)
        self.assertIn("KER-KMS-002", message)

    def test_errors_in_direct_mode(self):
        direct = self.make_direct_provider()
        self.emulator.faults.error_next(
            1, "KER-CRY-011", "Not Allowed to preform encryption with Master Key."
        )
        with self.assertLogs(LOGGER, level=logging.WARNING) as logs:
            with self.assertRaisesRegex(UserError, "KER-CRY-011"):
                encrypt_values(direct, [b"a", b"b", b"c"])
        self.assertLogged(logs, "direct encryption failed", "KER-CRY-011")
        self.emulator.faults.error_next(
            1, "KER-CRY-011", "Not Allowed to preform encryption with Master Key."
        )
        with self.assertLogs(LOGGER, level=logging.WARNING):
            message = self.assertRegistrantNotStored(4, provider=direct)
        self.assertIn("KER-CRY-011", message)

    def test_timeout(self):
        self.km_provider.write({"keymanager_api_timeout": 0.3, "keymanager_api_retries": 0})
        self.emulator.faults.set_latency(800, endpoint="/encrypt")
        self.assertFailsNamingTheCause(
            r"KeyManager /encrypt: no answer from 127.0.0.1:\d+ within 0.3 s", "within 0.3 s", 5
        )

    def test_expired_token_is_renewed_once(self):
        token = self.km_provider.encrypt_data(b"Grace Otieno")
        self.assertEqual(self.emulator.token_requests, 1)
        clear_data_key_cache()
        self.emulator.reset_counts()
        self.emulator.faults.expire_tokens()
        with self.assertLogs(LOGGER, level=logging.WARNING) as logs:
            self.assertEqual(self.km_provider.decrypt_data(token), b"Grace Otieno")
        self.assertEqual(self.emulator.token_requests, 1)  # exactly one renewal
        self.assertEqual(self.km_counts().get("/decrypt"), 2)  # the 401 and the retry
        self.assertLogged(logs, "KeyManager /decrypt answered 401")

    def test_keycloak_issuing_expired_tokens_fails_clearly(self):
        self.emulator.faults.issue_expired_tokens()
        with self.assertLogs(LOGGER, level=logging.WARNING) as logs:
            with self.assertRaisesRegex(UserError, r"KeyManager /encrypt \(HTTP 401, KER-ATH-401\)"):
                self.km_provider.encrypt_data(b"Grace Otieno")
        self.assertEqual(self.emulator.token_requests, 2)  # renewed once, not in a loop
        self.assertLogged(logs, "KER-ATH-401")

    def test_keycloak_rejecting_the_secret(self):
        self.emulator.faults.reject_secret()
        with self.assertLogs(LOGGER, level=logging.WARNING) as logs:
            with self.assertRaisesRegex(
                UserError, r"Keycloak token \(HTTP 401, unauthorized_client\): Keycloak rejected"
            ):
                self.km_provider.encrypt_data(b"Grace Otieno")
        self.assertEqual(self.emulator.token_requests, 1)  # credentials are not retried
        self.assertNotIn("/encrypt", self.km_counts())
        self.assertLogged(logs, "Keycloak token answered 401", "unauthorized_client")
        with self.assertLogs(LOGGER, level=logging.WARNING):
            message = self.assertRegistrantNotStored(6)
        self.assertIn("Keycloak", message)

    def test_keycloak_failing_is_retried(self):
        self.emulator.faults.fail_next(1, 503, endpoint="token")
        self.assertEqual(self.km_provider.decrypt_data(self.km_provider.encrypt_data(b"x")), b"x")
        self.assertEqual(self.emulator.token_requests, 2)
        self.emulator.faults.fail_next(5, 503, endpoint="token")
        clear_all()
        with self.assertLogs(LOGGER, level=logging.WARNING):
            with self.assertRaisesRegex(UserError, r"Keycloak token \(HTTP 503\)"):
                self.km_provider.jwt_sign({"a": 1})

    def test_no_secret_token_or_data_in_logs(self):
        secret_value = b"Zsecretvalue0001 Otieno"
        with (
            self.assertLogs(level=logging.DEBUG) as other_logs,
            self.assertLogs(LOGGER, logging.DEBUG) as logs,
        ):
            token = self.km_provider.encrypt_data(secret_value)
            self.km_provider.decrypt_data(token)
            direct = self.make_direct_provider()
            direct.decrypt_data(direct.encrypt_data(secret_value))
            self.km_provider.jwt_verify(self.km_provider.jwt_sign({"secret": "Zsecretvalue0002"}))
            self.emulator.faults.expire_tokens()
            clear_data_key_cache()
            self.km_provider.decrypt_data(token)
            self.emulator.faults.reject_secret()
            clear_all()
            with self.assertRaises(UserError):
                self.km_provider.jwt_sign({"a": 1})
        text = "\n".join(logs.output + other_logs.output)
        self.emulator.faults.clear()
        access_token = TokenFetcher(
            self.emulator.token_url, "openg2p-admin-client", self.client_secret
        ).get_token()
        self.assertNotIn(self.client_secret, text)
        self.assertNotIn(access_token.split(".")[0] + "." + access_token.split(".")[1][:20], text)
        self.assertNotIn("eyJ", text)  # no JWT of any kind
        self.assertNotIn("Zsecretvalue", text)
        self.assertIn("KeyManager /encrypt answered 200", text)

    def test_a_list_read_during_an_outage_fails_with_the_cause(self):
        # Not "[unreadable]" for every row after one timeout per record: one clear failure.
        self.use_as_registry_provider(self.km_provider)
        partners = self.env["res.partner"].create(
            [dict(marker_values(i), is_registrant=True) for i in range(700, 710)]
        )
        self.env["ir.config_parameter"].sudo().set_param("g2p_encryption.decrypt_registry", "True")
        self.env.invalidate_all()  # as a new request would: values come from the database
        clear_data_key_cache()
        self.emulator.faults.go_down("503")
        self.emulator.reset_counts()
        with self.assertRaisesRegex(UserError, "KeyManager /decrypt"):
            partners.with_user(self.crypto_admin).read(["name", "email"])
        # One data key to unwrap, tried once and retried once by the client: not once per record.
        self.assertLessEqual(self.emulator.counts.get("/decrypt", 0), 2)
