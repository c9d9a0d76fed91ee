"""The upgrade test's two halves, run in an Odoo shell: seed a database with the previous release
of the addon, then check it after ``-u g2p_encryption`` with this one.

    odoo-bin shell -c CONF -d DB < tools/upgrade_scenario.py   (G2P_UPGRADE_STEP=seed|check)

``seed`` (previous release): "Encrypt registry" on, three registrants, a key rotation (logged),
a read by a Crypto Admin with "Decrypt registry" on (logged), a second provider. It writes what it
made to ``G2P_UPGRADE_STATE`` (a JSON file). ``check`` (this release): every registrant reads back,
is found by its e-mail through the blind index, keys, providers and logs are all there, and the
re-encryption job moves the values of the previous format to the current one, and a contact
under a registrant (in the clear before) is encrypted by the registry job. Prints
``upgrade: ok`` or the problems, and exits 1 on a problem.
"""
# ruff: noqa: F821  (``env`` is the Odoo shell's)
# pylint: disable=undefined-variable,used-before-assignment

import json
import os
import sys

STATE = os.environ["G2P_UPGRADE_STATE"]
STEP = os.environ["G2P_UPGRADE_STEP"]
PEOPLE = [
    {"name": f"Zupgrade{n} Person", "email": f"zupgrade{n}@example.org", "phone": f"+25470000{n:04d}"}
    for n in range(3)
]


def seed():
    params = env["ir.config_parameter"].sudo()
    params.set_param("g2p_encryption.encrypt_registry", "True")
    partners = env["res.partner"].create([dict(person, is_registrant=True) for person in PEOPLE])
    env.flush_all()
    provider = env.ref("g2p_encryption.encryption_provider_default")
    provider.action_rotate_key()
    partners[2].write({"city": "Zupgradeville"})  # under the new key
    # Stored in the clear before 17.0.2.2.0: not a registrant, though it holds one's name.
    child = env["res.partner"].create(
        {"name": "Zupgrade Child", "parent_id": partners[0].id, "type": "other", "street": "Zupgrade Lane"}
    )
    # Its copy of the registrant's name was stored in the clear before 17.0.2.1.0.
    activity = partners[1].activity_schedule("mail.mail_activity_data_todo", summary="Zupgrade visit")
    admin = env.ref("base.user_admin")
    params.set_param("g2p_encryption.decrypt_registry", "True")
    partners.with_user(admin).read(["name"])  # logged by 1.x
    params.set_param("g2p_encryption.decrypt_registry", "")
    second = env["g2p.encryption.provider"].create({"name": "Zupgrade second provider"})
    # A provider in sealed custody (1.x: its fields on the provider), a value under its keys.
    sealed = env["g2p.encryption.provider"].create({"name": "Zupgrade sealed provider"})
    shares = list(sealed._custody_initialise(2, 3).shares)
    sealed_token = sealed.encrypt_data(b"Zupgrade sealed value").decode()
    env.cr.commit()
    state = {
        "partners": partners.ids,
        "activity": activity.id,
        "child": child.id,
        "providers": env["g2p.encryption.provider"].search([]).ids,
        "keys": env["g2p.encryption.key"].search([]).ids,
        "decryption_logs": env["g2p.decryption.log"].search_count([]),
        "second": second.id,
        "sealed": sealed.id,
        "shares": shares,
        "sealed_token": sealed_token,
    }
    with open(STATE, "w", encoding="utf-8") as handle:
        json.dump(state, handle)
    sys.stdout.write(f"upgrade: seeded {len(partners)} registrants with the previous release\n")


def check():
    with open(STATE, encoding="utf-8") as handle:
        state = json.load(handle)
    problems = []
    partners = env["res.partner"].browse(state["partners"])
    env.cr.execute(
        "SELECT count(*) FROM res_partner WHERE id IN %s AND name LIKE 'g2pe1.%%'", (tuple(partners.ids),)
    )
    if not env.cr.fetchone()[0]:
        problems.append("the previous release's ciphertext is not there to upgrade")
    for partner, person in zip(partners, PEOPLE, strict=True):
        if partner.name != person["name"] or partner.email != person["email"]:
            problems.append(f"registrant {partner.id} does not read back after the upgrade")
        if env["res.partner"].search([("email", "=", person["email"])]) != partner:
            problems.append(f"registrant {partner.id} is not found by its e-mail after the upgrade")
    if partners[2].city != "Zupgradeville":
        problems.append("a value written under a rotated key does not read back")
    if set(env["g2p.encryption.provider"].with_context(active_test=False).search([]).ids) != set(
        state["providers"]
    ):
        problems.append("providers changed")
    if not set(state["keys"]) <= set(env["g2p.encryption.key"].search([]).ids):
        problems.append("keys were lost")
    if env["g2p.decryption.log"].search_count([]) < state["decryption_logs"]:
        problems.append("decryption log rows were lost")
    jobs = _started_jobs(problems)
    for _pass in range(20):
        env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        if not jobs.filtered(lambda job: job.state == "running"):
            break
    env.cr.execute(
        "SELECT count(*) FROM res_partner WHERE id IN %s AND name LIKE 'g2pe1.%%'", (tuple(partners.ids),)
    )
    if env.cr.fetchone()[0]:
        problems.append("the re-encryption job left values in the previous format")
    env.invalidate_all()
    if [p.name for p in partners] != [person["name"] for person in PEOPLE]:
        problems.append("registrants do not read back after the re-encryption")
    problems.extend(_activity_problems(state))
    problems.extend(_child_problems(state))
    problems.extend(_checks_of_other_topics(state))
    env.cr.rollback()
    for problem in problems:
        sys.stdout.write(f"upgrade: PROBLEM: {problem}\n")
    sys.stdout.write("upgrade: ok\n" if not problems else f"upgrade: {len(problems)} problem(s)\n")
    sys.exit(1 if problems else 0)


def _started_jobs(problems):
    """The jobs the upgrade started: re-encryption of the previous format, encryption of the
    activities' document names."""
    jobs = env["g2p.encryption.job"].search([("kind", "=", "reencrypt"), ("state", "=", "running")])
    if not jobs:
        problems.append("no re-encryption job was started for the previous format")
    activity_jobs = env["g2p.encryption.job"].search(
        [("kind", "=", "encrypt"), ("res_model", "=", "mail.activity"), ("state", "=", "running")]
    )
    if not activity_jobs:
        problems.append("no job was started to encrypt the activities' document names")
    partner_jobs = env["g2p.encryption.job"].search(
        [("kind", "=", "encrypt"), ("res_model", "=", "res.partner"), ("state", "=", "running")]
    )
    if not partner_jobs:
        problems.append("no job was started to encrypt the contacts under registrants")
    return jobs | activity_jobs | partner_jobs


def _child_problems(state):
    """A contact under a registrant is in scope since 17.0.2.2.0, and encrypted by the job."""
    problems = []
    env.cr.execute(
        "SELECT name, complete_name, street, g2p_in_registry FROM res_partner WHERE id = %s",
        (state["child"],),
    )
    *stored, in_registry = env.cr.fetchone()
    if not in_registry:
        problems.append("a contact under a registrant is not in scope")
    if not all((value or "").startswith("g2pe2.") for value in stored):
        problems.append("a contact under a registrant is still stored in the clear")
    env.cr.execute("SELECT count(*) FROM g2p_encrypted_field WHERE scope LIKE '%is_registrant'")
    if env.cr.fetchone()[0]:
        problems.append("encrypted fields are still scoped by is_registrant")
    child = env["res.partner"].browse(state["child"])
    if (child.street, child.complete_name) != ("Zupgrade Lane", f"{PEOPLE[0]['name']}, Zupgrade Child"):
        problems.append("a contact under a registrant does not read back")
    return problems


def _activity_problems(state):
    env.cr.execute("SELECT res_name FROM mail_activity WHERE id = %s", (state["activity"],))
    problems = []
    if not (env.cr.fetchone()[0] or "").startswith("g2pe2."):
        problems.append("the activity's document name is still stored in the clear")
    if env["mail.activity"].browse(state["activity"]).res_name != PEOPLE[1]["name"]:
        problems.append("the activity's document name does not read back")
    return problems


def _checks_of_other_topics(state):
    """Custody and the key/custody event log, as their migration left them."""
    problems = []
    if "g2p.encryption.event" in env:
        rotations = env["g2p.encryption.event"].sudo().search_count([("event", "=", "rotation")])
        if not rotations:
            problems.append("the key rotation logged by the previous release is not in the event log")
    provider = env.ref("g2p_encryption.encryption_provider_default")
    if provider.custody_mode != "key_file":
        problems.append("the default provider is no longer in key-file custody")
    problems.extend(_sealed_custody(state))
    for log in ("g2p.encryption.event", "g2p.decryption.log"):
        found = env[log]._audit_check()["problems"]
        if found:
            problems.append(f"{log}: the upgraded rows do not form a sound chain: {found}")
    return problems


def _sealed_custody(state):
    """The sealed provider is sealed in this new server, unseals with its 1.x shares, decrypts."""
    provider = env["g2p.encryption.provider"].browse(state["sealed"])
    if provider.custody_mode != "sealed" or not provider.custody_id:
        return ["the provider in sealed custody lost its custody"]
    if provider.custody_state != "sealed":
        return ["a new server does not start sealed"]
    wizards = env["g2p.encryption.custody.unseal.wizard"]
    for share in state["shares"][:2]:
        wizards.create({"custody_id": provider.custody_id.id, "share": share})
    if provider.custody_state != "unsealed":
        return ["the shares of the previous release do not unseal"]
    if provider.sudo().decrypt_data(state["sealed_token"].encode()) != b"Zupgrade sealed value":
        return ["a value under the sealed provider's keys does not decrypt after unsealing"]
    return []


if STEP == "seed":
    seed()
else:
    check()
