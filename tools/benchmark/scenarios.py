"""The configurations of this addon that the benchmark compares, their providers and instruments."""

import sys
from dataclasses import dataclass

PARAM_ENCRYPT = "g2p_encryption.encrypt_registry"
PARAM_DECRYPT = "g2p_encryption.decrypt_registry"
PARAM_PROVIDER = "g2p_encryption.registry_encryption_provider_id"
NOT_INSTALLED = "n/a (keymanager provider type not installed)"
NO_HSM = "n/a (SoftHSM2 or python-pkcs11 missing)"


@dataclass(frozen=True)
class Configuration:
    """One column of the comparison: how the registry is encrypted while the operations run.

    ``keymanager_mode`` is None for the default ``local`` provider, else the mode of a keymanager
    provider talking to the emulator. ``slow`` ones run only ``--slow-runs`` times. ``process``
    says where it runs: ``addon`` (this process) or ``baseline`` (OpenG2P's modules, another
    database and process, ``benchmark.baseline``). ``hsm``: a ``pkcs11`` provider on a SoftHSM2
    token loaded in this process.
    """

    name: str
    label: str
    encrypt: bool = True
    keymanager_mode: str | None = None
    slow: bool = False
    process: str = "addon"
    reference: str = "off"  # the configuration its ratios are to
    hsm: bool = False

    @property
    def remote(self):
        return self.keymanager_mode is not None or self.process == "baseline"


CONFIGURATIONS = {
    configuration.name: configuration
    for configuration in (
        Configuration("off", "encryption off", encrypt=False),
        Configuration("local", "this addon, `local`"),
        Configuration("envelope", "this addon, `keymanager` envelope", keymanager_mode="envelope"),
        # Data keys wrapped by an AES key that never leaves a PKCS#11 token (SoftHSM2).
        Configuration("pkcs11", "this addon, `pkcs11` (SoftHSM2)", hsm=True),
        # This addon's compatibility mode: one KeyManager call per value.
        Configuration("direct", "this addon, `keymanager` direct", keymanager_mode="direct", slow=True),
        # OpenG2P's own g2p_registry_encryption (the per-record KeyManager baseline), and encryption
        # off in its database: its ratios are to that.
        Configuration("og_off", "OpenG2P database, encryption off", encrypt=False, process="baseline"),
        Configuration(
            "openg2p",
            "OpenG2P `g2p_registry_encryption`",
            slow=True,
            process="baseline",
            reference="og_off",
        ),
    )
}
DEFAULT_CONFIGS = ("off", "local", "envelope", "pkcs11", "og_off", "openg2p")
LABELS = {name: configuration.label for name, configuration in CONFIGURATIONS.items()}


def progress(text):
    sys.stderr.write(f"[bench] {text}\n")
    sys.stderr.flush()


def keymanager_installed(env):
    selection = env["g2p.encryption.provider"]._fields["type"].selection
    return "keymanager" in dict(selection if isinstance(selection, list) else [])


def clear_worker_caches():
    """Forget data keys, tokens and certificates, as a freshly started worker would."""
    from odoo.addons.g2p_encryption.core import cache
    from odoo.addons.g2p_encryption.models.encryption_provider import clear_data_key_cache

    clear_data_key_cache()
    cache.clear_all()


def make_provider(env, configuration, emulator, hsm=None):
    """The provider of ``configuration``, its keys already made (as in a registry in use)."""
    if configuration.hsm:
        from odoo.tools import config

        provider = (
            env["g2p.encryption.provider"]
            .sudo()
            .create(
                {
                    "name": "Benchmark PKCS#11",
                    "type": "pkcs11",
                    "pkcs11_library": hsm.library,
                    "pkcs11_token_label": hsm.labels[0],
                }
            )
        )
        config.options[f"g2p_encryption_pkcs11_pin_{provider.id}"] = hsm.pin  # never in the database
    elif not configuration.keymanager_mode:
        provider = env.ref("g2p_encryption.encryption_provider_default")
    else:
        from odoo.addons.g2p_encryption.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

        provider = (
            env["g2p.encryption.provider"]
            .sudo()
            .create(
                {
                    "name": f"Benchmark KeyManager ({configuration.name})",
                    "type": "keymanager",
                    "keymanager_mode": configuration.keymanager_mode,
                    "keymanager_api_base_url": emulator.keymanager_url,
                    "keymanager_auth_url": emulator.token_url,
                    "keymanager_auth_client_id": DEFAULT_CLIENT_ID,
                    "keymanager_auth_client_secret": DEFAULT_CLIENT_SECRET,
                    "keymanager_encrypt_application_id": "REGISTRATION",
                    "keymanager_encrypt_reference_id": "ENCRYPT",
                }
            )
        )
    if configuration.encrypt:
        # The benchmark measures the addon from inside: it makes the keys the way the addon does.
        provider._active_key("encrypt")  # pylint: disable=protected-access
        provider._blind_index_key()  # pylint: disable=protected-access
    env.flush_all()
    return provider


def activate(env, configuration, provider):
    """Make ``configuration`` the registry's, as an admin would in Settings."""
    params = env["ir.config_parameter"].sudo()
    params.set_param(PARAM_PROVIDER, str(provider.id))
    params.set_param(PARAM_ENCRYPT, "True" if configuration.encrypt else "")
    params.set_param(PARAM_DECRYPT, "True")
    env.registry.clear_cache()
    env.flush_all()
    env.invalidate_all()


def make_users(env):
    """(Crypto Admin env, clerk env): the people who open the list."""

    def user_env(login, xmlids):
        user = (
            env["res.users"]
            .with_context(no_reset_password=True, mail_create_nolog=True)
            .create({"name": login, "login": login, "groups_id": [(6, 0, [env.ref(x).id for x in xmlids])]})
        )
        return env(user=user.id)

    admin = ("base.group_user", "base.group_partner_manager", "g2p_encryption.crypto_admin")
    clerk = ("base.group_user", "base.group_partner_manager")
    return user_env("g2p_bench_crypto_admin", admin), user_env("g2p_bench_clerk", clerk)


def install_sections(env, sections):
    """Time the addon's read and write paths (and count the values they handle)."""
    from odoo.addons.g2p_encryption.models import encrypted_field

    partner_class = type(env["res.partner"])
    sections.install(
        encrypted_field,
        "decrypt_stored_fields",
        "decrypt",
        count=lambda args: sum(len(pending) for pending in args[1].values()),
    )
    sections.install(
        partner_class,
        "_g2p_encrypt_rows",
        "encrypt",
        count=lambda args: sum(1 for _id, values in args[1] for value in values.values() if value),
        batch_section="encrypt batch",
    )
    sections.install(type(env["g2p.blind.index"]), "_store", "blind index", count=lambda args: len(args[2]))
    sections.install(type(env["g2p.decryption.log"]), "_write_row", "audit log", count=lambda args: 1)


def person_exit():
    """The exit a person's request opens (``encryption_exits.exit_for``)."""
    from odoo.addons.g2p_encryption.models.encryption_exits import exit_for

    return exit_for
