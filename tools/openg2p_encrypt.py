"""Turn "Encrypt registry" on in an OpenG2P database and encrypt the registrants it already holds.

    python tools/openg2p_encrypt.py ODOO_CONF DATABASE [--seed-only]

OpenG2P's modules have no demo registrants: it first registers a small household the way
OpenG2P's forms do (two individuals with names, e-mail, phone, birth place, address, a national
ID and phone numbers; a group with both as members), in plaintext, "Encrypt registry" off, as a
registry holds before encryption is turned on. Then it sets ``g2p_encryption.encrypt_registry``
and runs the addon's registry encryption job to its end, as the cron would
(``g2p.encryption.job``: ``_start_registry("encrypt")`` then ``_cron_run_jobs``), and prints the
jobs' outcome and how many registrants still have a value stored in plaintext. Exits 1 when registering,
the job or its outcome failed (registrants left in plaintext). ``--seed-only`` registers the
household and stops (the baseline run).
"""

import sys

import odoo
from odoo import SUPERUSER_ID, api

# Passes of the job runner; each one runs for up to the cron's time budget, 50 s.
MAX_PASSES = 20
SEED_ID_TYPE = "Zseed National ID"
PARAM_ENCRYPT = "g2p_encryption.encrypt_registry"


def _seed(env):
    """Register a household in plaintext, once (the names say it is the harness's)."""
    partners = env["res.partner"].sudo().with_context(active_test=False)
    if partners.search_count([("name", "=", "Zseed Household")]):
        return 0
    id_type = env["g2p.id.type"].sudo().create({"name": SEED_ID_TYPE})
    people = []
    for number, given in enumerate(("Amara", "Baraka"), start=1):
        values = {
            "name": f"ZSEED, {given.upper()}",
            "given_name": given,
            "family_name": "Zseed",
            "is_registrant": True,
            "is_group": False,
            "email": f"{given.lower()}.zseed@example.org",
            "phone": f"+25470090010{number}",
            "birth_place": "Zseedtown",
            "address": f"{number} Zseed Road",
            "reg_ids": [(0, 0, {"id_type": id_type.id, "value": f"ZSEED-000{number}"})],
            "phone_number_ids": [(0, 0, {"phone_no": f"+25470090010{number}"})],
        }
        people.append(partners.create({k: v for k, v in values.items() if k in partners._fields}))
    group = {"name": "Zseed Household", "is_registrant": True, "is_group": True}
    if "group_membership_ids" in partners._fields:
        group["group_membership_ids"] = [(0, 0, {"individual": person.id}) for person in people]
    partners.create(group)
    return len(people) + 1


def _plaintext_registrants(env):
    """Registrants with a value of an encrypted field still stored in the clear (SQL: what a
    dump would show)."""
    partners = env["res.partner"]
    columns = [name for name in getattr(partners, "_g2p_encrypted", {}) if partners._fields[name].store]
    if not columns:
        return None
    condition = " OR ".join(
        f"({c} <> '' AND {c} NOT LIKE 'g2pe%%' AND {c} NOT LIKE 'g2pkm%%')" for c in columns
    )
    env.cr.execute(f"SELECT count(*) FROM res_partner WHERE is_registrant AND ({condition})")
    return env.cr.fetchone()[0]


def _run_jobs(env):
    jobs = env["g2p.encryption.job"]
    started = jobs._start_registry("encrypt")  # one job per model with encrypted fields
    env.cr.commit()
    for _pass in range(MAX_PASSES):
        jobs._cron_run_jobs()
        env.cr.commit()
        if not jobs.search_count([("state", "=", "running")]):
            break
    ok = True
    for job in jobs.search([("id", ">=", min(started.ids))], order="id"):
        sys.stdout.write(
            f"encryption job {job.id} ({job.kind}, {job.res_model}): {job.state}, "
            f"{job.done} of {job.total} records; {job.message or ''}\n"
        )
        ok = ok and job.state == "done"
    return ok


def _first_line(error):
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def main(argv):
    if len(argv) not in (2, 3) or argv[2:] not in ([], ["--seed-only"]):
        sys.stderr.write(__doc__)
        return 2
    conf, dbname, seed_only = argv[0], argv[1], argv[2:] == ["--seed-only"]
    odoo.tools.config.parse_config(["-c", conf, "-d", dbname, "--no-http", "--log-level=warn"])
    registry = odoo.modules.registry.Registry(dbname)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        params = env["ir.config_parameter"].sudo()
        # A registry from before encryption: registered while "Encrypt registry" is off (this
        # addon's demo data turns it on).
        params.set_param(PARAM_ENCRYPT, False)
        try:
            seeded = _seed(env)
            env.cr.commit()
        except Exception as error:  # pylint: disable=broad-except
            env.cr.rollback()
            sys.stdout.write(f"registering the household in plaintext FAILED: {_first_line(error)}\n")
            return 1
        sys.stdout.write(f"registered {seeded} registrants in plaintext (household Zseed)\n")
        if seed_only:
            return 0
        registrants = env["res.partner"].sudo().with_context(active_test=False)
        count = registrants.search_count([("is_registrant", "=", True)])
        params.set_param(PARAM_ENCRYPT, "True")
        env.cr.commit()
        try:
            ok = _run_jobs(env)
        except Exception as error:  # pylint: disable=broad-except
            env.cr.rollback()
            sys.stdout.write(f"running the registry encryption job FAILED: {_first_line(error)}\n")
            ok = False
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
