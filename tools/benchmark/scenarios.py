"""The configurations the benchmark compares, their providers, and the order of the runs."""

import sys
from dataclasses import dataclass

from .measure import OPERATIONS

PARAM_ENCRYPT = "g2p_encryption.encrypt_registry"
PARAM_DECRYPT = "g2p_encryption.decrypt_registry"
PARAM_PROVIDER = "g2p_encryption.registry_encryption_provider_id"
NOT_INSTALLED = "n/a (keymanager provider type not installed)"
NO_HSM = "n/a (SoftHSM2 or python-pkcs11 missing)"


@dataclass(frozen=True)
class Configuration:
    """One column of the comparison: how the registry is encrypted while the operations run.

    ``keymanager_mode`` is None for the default ``local`` provider, else the mode of a keymanager
    provider talking to the emulator. ``hsm``: a ``pkcs11`` provider on a SoftHSM2 token. ``slow``
    configurations run last, ``--direct-runs`` times.
    """

    name: str
    label: str
    encrypt: bool = True
    keymanager_mode: str | None = None
    slow: bool = False
    hsm: bool = False

    @property
    def remote(self):
        return self.keymanager_mode is not None


CONFIGURATIONS = {
    configuration.name: configuration
    for configuration in (
        Configuration("off", "encryption off", encrypt=False),
        Configuration("local", "`local`"),
        Configuration("envelope", "`keymanager` envelope", keymanager_mode="envelope"),
        # Data keys wrapped by an AES key inside a PKCS#11 token (SoftHSM2, in this process).
        Configuration("pkcs11", "`pkcs11` (SoftHSM2)", hsm=True),
        # The per-record baseline of OpenG2P's module: one HTTP call per value.
        Configuration("direct", "`keymanager` direct", keymanager_mode="direct", slow=True),
    )
}
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

    clear_data_key_cache()  # until the data-key cache is a core.cache.Cache too
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
    elif not configuration.remote:
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


def crypto_admin_env(env):
    groups = [
        env.ref(xmlid).id
        for xmlid in ("base.group_user", "base.group_partner_manager", "g2p_encryption.crypto_admin")
    ]
    user = (
        env["res.users"]
        .with_context(no_reset_password=True, mail_create_nolog=True)
        .create(
            {
                "name": "Benchmark Crypto Admin",
                "login": "g2p_bench_crypto_admin",
                "groups_id": [(6, 0, groups)],
            }
        )
    )
    return env(user=user.id)


def run_all(bench, env, emulator, admin_env, args, installed, hsm=None):
    """{configuration name: [run results] or why it was not measured}.

    The runs of the fast configurations are interleaved (off, local, envelope, off, local...), so
    that a slower moment of the machine weighs on all of them alike; slow ones run last.
    """
    results, providers = {}, {}
    for name in args.configs:
        configuration = CONFIGURATIONS[name]
        if configuration.remote and not installed:
            results[name] = NOT_INSTALLED
            progress(f"{name}: {NOT_INSTALLED}")
            continue
        if configuration.hsm and hsm is None:
            results[name] = NO_HSM
            progress(f"{name}: {NO_HSM}")
            continue
        providers[name] = make_provider(env, configuration, emulator, hsm)
        results[name] = []
    progress("warm-up (not timed into the results): encryption off, then local")
    for name, records in (("off", args.records), ("local", min(args.records, 100))):
        activate(env, CONFIGURATIONS[name], providers.get(name) or providers["off"])
        bench.run_once(args.runs + args.direct_runs + 10, admin_env, name != "off", records)
    # Each configuration starts cold, as a freshly started worker would.
    clear_worker_caches()
    if emulator is not None:
        emulator.reset_counts()
    fast = [name for name in providers if not CONFIGURATIONS[name].slow]
    slow = [name for name in providers if CONFIGURATIONS[name].slow]
    rounds = [(run_index, fast) for run_index in range(args.runs)]
    rounds += [(run_index, slow) for run_index in range(args.direct_runs) if slow]
    for run_index, names in rounds:
        for name in names:
            configuration = CONFIGURATIONS[name]
            activate(env, configuration, providers[name])
            run = bench.run_once(run_index, admin_env, check_plaintext=configuration.encrypt)
            results[name].append(run)
            runs = args.direct_runs if configuration.slow else args.runs
            timings = ", ".join(
                f"{op} {run[op]['seconds']:.3f} s ({run[op]['km_calls']} KM calls)" for op in OPERATIONS
            )
            progress(f"{name} run {run_index + 1}/{runs}: {timings}")
    return results
