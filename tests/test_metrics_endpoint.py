# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The Prometheus endpoint: closed unless configured, then the counts the emulator also counted."""

from unittest.mock import patch

import psycopg2
from prometheus_client.parser import text_string_to_metric_families

from odoo.tests import HttpCase, tagged
from odoo.tools import config, mute_logger

from ..controllers.metrics import ADDRESSES_OPTION, METRICS_PATH, TOKEN_OPTION
from ..core import metrics
from ..models.encrypted_field import decrypt_stored
from ..models.encryption_metrics import DatabaseCollector
from .common import KeyManagerCase
from .test_custody import CustodyCase

TOKEN = "scrape-token-0123456789"


def scrape_samples(body):
    """{(name, sorted labels): value} of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(body if isinstance(body, str) else body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(found, name, **labels):
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        value
        for (sample_name, sample_labels), value in found.items()
        if sample_name == name and labels.items() <= dict(sample_labels).items()
    )


@tagged("post_install", "-at_install")
class TestMetricsEndpoint(HttpCase):
    def scrape(self, token=None, headers=None, **options):
        headers = dict(headers or {}, **({"Authorization": f"Bearer {token}"} if token else {}))
        with patch.dict(config.options, {TOKEN_OPTION: "", ADDRESSES_OPTION: "", **options}):
            return self.url_open(METRICS_PATH, headers=headers)

    def test_closed_unless_the_server_configuration_opens_it(self):
        self.assertEqual(self.scrape().status_code, 404)

    def test_a_token_is_required_when_configured(self):
        self.assertEqual(self.scrape(**{TOKEN_OPTION: TOKEN}).status_code, 401)
        self.assertEqual(self.scrape("wrong", **{TOKEN_OPTION: TOKEN}).status_code, 401)
        provider = self.env.ref("g2p_encryption.encryption_provider_default")
        provider._active_key("encrypt")
        response = self.scrape(TOKEN, **{TOKEN_OPTION: TOKEN})
        self.assertEqual(response.status_code, 200)
        self.assertNotIn(TOKEN, response.text)
        found = scrape_samples(response.text)
        self.assertIn(("g2p_encryption_registry_encrypting", ()), found)
        age = found[
            ("g2p_encryption_key_age_seconds", (("provider", str(provider.id)), ("usage", "encrypt")))
        ]
        self.assertGreaterEqual(age, 0)

    def test_an_address_list_lets_only_those_addresses_in(self):
        self.assertEqual(self.scrape(**{ADDRESSES_OPTION: "10.0.0.0/8, 192.168.1.1"}).status_code, 403)
        self.assertEqual(self.scrape(**{ADDRESSES_OPTION: "10.0.0.0/8, 127.0.0.0/8"}).status_code, 200)
        both = {ADDRESSES_OPTION: "127.0.0.1", TOKEN_OPTION: TOKEN}
        self.assertEqual(self.scrape(**both).status_code, 401)
        self.assertEqual(self.scrape(TOKEN, **both).status_code, 200)

    def test_the_counters_go_out_when_the_database_cannot_be_read(self):
        def unreachable(_database):
            raise psycopg2.OperationalError("connection refused")

        with (
            patch("odoo.addons.g2p_encryption.controllers.metrics.registry", unreachable),
            mute_logger("odoo.addons.g2p_encryption.controllers.metrics"),
        ):
            response = self.scrape(TOKEN, **{TOKEN_OPTION: TOKEN})
        self.assertEqual(response.status_code, 200)
        found = scrape_samples(response.text)
        self.assertEqual(found[("g2p_encryption_database_gauges_up", ())], 0.0)
        self.assertFalse([name for name, _labels in found if name == "g2p_encryption_registry_encrypting"])

    def test_an_address_list_refuses_what_came_through_a_proxy(self):
        # The address tested is the peer's: behind a proxy it is the proxy's, or (proxy mode) one
        # the client may write itself into X-Forwarded-For.
        allowed = {ADDRESSES_OPTION: "127.0.0.0/8"}
        for header in ("X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "X-Real-IP"):
            response = self.scrape(headers={header: "127.0.0.1"}, **allowed)
            self.assertEqual(response.status_code, 403, header)
        self.assertEqual(self.scrape(**allowed).status_code, 200)
        with_token = dict(allowed, **{TOKEN_OPTION: TOKEN})
        self.assertEqual(self.scrape(TOKEN, {"X-Forwarded-For": "127.0.0.1"}, **with_token).status_code, 403)
        self.assertEqual(
            self.scrape(TOKEN, {"X-Forwarded-For": "127.0.0.1"}, **{TOKEN_OPTION: TOKEN}).status_code, 200
        )


@tagged("post_install", "-at_install")
class TestSealedGauge(CustodyCase):
    def gauges(self):
        """{(name, sorted labels): value} of the database's gauges, as a scrape collects them."""
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in DatabaseCollector(self.env).collect()
            for sample in family.samples
        }

    def test_a_provider_in_sealed_custody_is_reported_sealed_until_unsealed(self):
        shares = self.initialise()
        sealed = ("g2p_encryption_provider_sealed", (("provider", str(self.sealed_provider.id)),))
        self.assertEqual(self.gauges()[sealed], 0.0)
        self.restart()
        found = self.gauges()
        self.assertEqual(found[sealed], 1.0)
        self.assertEqual(found[("g2p_encryption_database_gauges_up", ())], 1.0)
        self.enter(shares[:3])
        self.assertEqual(self.gauges()[sealed], 0.0)

    def test_a_failing_gauge_leaves_the_scrape_answered(self):
        def broken(_self):
            raise RuntimeError("gauges broken")

        with (
            patch.object(type(self.env["g2p.encryption.metrics"]), "_gauges", broken),
            mute_logger("odoo.addons.g2p_encryption.models.encryption_metrics"),
        ):
            found = self.gauges()
        self.assertEqual(found, {("g2p_encryption_database_gauges_up", ()): 0.0})


@tagged("post_install", "-at_install")
class TestMetricsCounts(KeyManagerCase):
    """What this process counted, as a scrape reads it, against what the emulator received."""

    def scrape(self):
        return scrape_samples(metrics.exposition()[0])

    def test_keymanager_and_keycloak_calls_add_up_to_what_the_emulator_received(self):
        self.assertIsNotNone(metrics.directory())
        before = self.scrape()
        # Keys made and used under KeyManager (wrap, unwrap, a token), a direct-mode round trip.
        self.km_provider._encrypt_values([b"a", b"b"], [b"x", b"y"])
        from ..models.encryption_provider import clear_data_key_cache

        clear_data_key_cache()
        tokens = self.km_provider._encrypt_values([b"c"], [b"z"])
        self.km_provider._decrypt_tokens(tokens, [b"z"])
        direct = self.make_direct_provider()
        direct._encrypt_values([b"d"], [b"w"])
        after = self.scrape()
        received = self.emulator.received
        self.assertTrue(received)
        for endpoint, count in received.items():
            service = "keycloak" if endpoint == "token" else "keymanager"
            counted = total(after, "g2p_encryption_remote_requests_total", service=service, endpoint=endpoint)
            counted -= total(
                before, "g2p_encryption_remote_requests_total", service=service, endpoint=endpoint
            )
            self.assertEqual(counted, count, endpoint)

    def test_values_and_plaintext_exits_are_counted(self):
        before = self.scrape()
        partners = self.env["res.partner"]
        rows = partners._g2p_encrypt_rows(
            [(1, {"name": "Zmetric A", "email": ""}), (2, {"name": "Zmetric B"})]
        )
        field = partners._fields["name"]
        decrypt_stored(self.env, field, [(1, rows[1]["name"]), (2, rows[2]["name"])])
        self.env["g2p.decryption.log"]._write_row("exit", "/test", "res.partner", {"name"}, [1, 2])
        after = self.scrape()

        def delta(name, **labels):
            return total(after, name, **labels) - total(before, name, **labels)

        self.assertEqual(delta("g2p_encryption_values_total", operation="encrypt", model="res.partner"), 2)
        self.assertEqual(delta("g2p_encryption_values_total", operation="decrypt", model="res.partner"), 2)
        self.assertEqual(delta("g2p_encryption_plaintext_exits_total", kind="exit", model="res.partner"), 1)
        self.assertEqual(
            delta("g2p_encryption_plaintext_exit_records_total", kind="exit", model="res.partner"), 2
        )
