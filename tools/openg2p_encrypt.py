"""Turn "Encrypt registry" on in an OpenG2P database and encrypt the registrants it already holds.

    python tools/openg2p_encrypt.py ODOO_CONF DATABASE

Sets ``g2p_encryption.encrypt_registry`` and runs the addon's registry encryption job to its end,
as the cron would (``g2p.encryption.job``: ``_start_registry_encryption`` then ``_cron_run_jobs``),
then prints the job's outcome and how many registrants are still stored in plaintext. Exits 1 when
the job failed, did not finish, or left registrants in plaintext.
"""

import sys

import odoo
from odoo import SUPERUSER_ID, api

# Passes of the job runner; each one runs for up to the cron's time budget, 50 s.
MAX_PASSES = 20


def _plaintext_registrants(env):
    partners = env["res.partner"].sudo().with_context(active_test=False)
    if "is_encrypted" not in partners._fields or not hasattr(partners, "_encryptable_domain"):
        return None
    return partners.search_count([("is_encrypted", "=", False)] + partners._encryptable_domain())


def _run_jobs(env):
    jobs = env["g2p.encryption.job"]
    started = jobs._start_registry_encryption()
    env.cr.commit()  # pylint: disable=invalid-commit
    for _pass in range(MAX_PASSES):
        jobs._cron_run_jobs()
        env.cr.commit()  # pylint: disable=invalid-commit
        if not jobs.search_count([("state", "=", "running")]):
            break
    ok = True
    for job in jobs.search([("id", ">=", started.id)], order="id"):
        sys.stdout.write(
            f"encryption job {job.id} ({job.kind}, {job.res_model}): {job.state}, "
            f"{job.done} of {job.total} records; {job.message or ''}\n"
        )
        ok = ok and job.state == "done"
    return ok


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    conf, dbname = argv
    odoo.tools.config.parse_config(["-c", conf, "-d", dbname, "--no-http", "--log-level=warn"])
    registry = odoo.modules.registry.Registry(dbname)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        registrants = env["res.partner"].sudo().with_context(active_test=False)
        count = registrants.search_count([("is_registrant", "=", True)])
        env["ir.config_parameter"].set_param("g2p_encryption.encrypt_registry", "True")
        env.cr.commit()  # pylint: disable=invalid-commit
        ok = _run_jobs(env)
        plaintext = _plaintext_registrants(env)
        if plaintext is None:
            sys.stdout.write(f"encryption: on; {count} registrants (cannot tell how many are encrypted)\n")
        else:
            sys.stdout.write(f"encryption: on; {count} registrants, {plaintext} still stored in plaintext\n")
            ok = ok and plaintext == 0
    if not ok:
        sys.stdout.write("encryption: FAILED (the job failed, did not finish, or left plaintext)\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
