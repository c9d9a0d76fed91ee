"""The template database: g2p_encryption and queue_job, and registrants stored in the clear.

python -m job_scale.dataset ODOO_CONF DATABASE COUNT     (fills an installed database)
"""

import subprocess
import sys

from harness.odoo import drop_database

ORM_MADE = 1000  # registrants made through the ORM; the others are SQL copies with their own values


def odoo_conf(source, target, queue_job_addons):
    """A copy of ``source`` with queue_job's addons on the path and loaded server-wide."""
    with open(source, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    out = []
    for line in lines:
        if line.startswith("addons_path"):
            line = f"{line},{queue_job_addons}"
        out.append(line)
    out.append("server_wide_modules = base,web,queue_job")
    with open(target, "w", encoding="utf-8") as handle:
        handle.write("\n".join(out) + "\n")
    return target


def installed(database):
    answer = subprocess.run(
        [
            "psql",
            "-d",
            database,
            "-Atc",
            "SELECT count(*) FROM res_partner WHERE is_registrant",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(answer.stdout.strip()) if answer.returncode == 0 and answer.stdout.strip() else 0


def make_template(args, conf):
    """Install and fill the template database, unless it holds the registrants already."""
    if not args.fresh and installed(args.template) >= args.registrants:
        return False
    drop_database(args.template)
    command = [args.python, args.odoo_bin, "-c", conf, "-d", args.template]
    command += ["-i", "g2p_encryption,queue_job,contacts", "--without-demo=all", "--stop-after-init"]
    subprocess.run([*command, "--log-level=warn", "--no-http"], check=True)
    subprocess.run(
        [args.python, "-m", "job_scale.dataset", conf, args.template, str(args.registrants)], check=True
    )
    return True


def fill(conf, database, count):
    from benchmark.data import values_of_run

    import odoo
    from odoo import SUPERUSER_ID, api

    odoo.tools.config.parse_config(["-c", conf, "-d", database, "--log-level=warn"])
    with odoo.registry(database).cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True, "mail_create_nolog": True})
        env["ir.config_parameter"].set_param("g2p_encryption.encrypt_registry", "")
        made = min(count, ORM_MADE)
        ids = env["res.partner"].create(values_of_run(0, made)).ids
        env.flush_all()
        copies = count - made
        if copies > 0:
            cr.execute(
                """SELECT column_name FROM information_schema.columns
                   WHERE table_name = 'res_partner' AND column_name <> 'id'"""
            )
            columns = [row[0] for row in cr.fetchall()]
            # Every copy gets values of its own (k is its copy number): distinct names, e-mails,
            # phones, as a real registry's, so that the blind index holds distinct digests.
            changed = {
                "name": "t.name || ' ' || k",
                "complete_name": "t.name || ' ' || k",
                "email": "k || '.' || t.email",
                "email_normalized": "lower(k || '.' || t.email)",
                "phone": "t.phone || ' ' || k",
                "mobile": "t.mobile || ' ' || k",
                "street": "k || ' ' || t.street",
            }
            selected = ", ".join(changed.get(column, f't."{column}"') for column in columns)
            rounds = -(-copies // made)
            # The column names come from the catalogue.
            cr.execute(
                f"""INSERT INTO res_partner ({", ".join(f'"{c}"' for c in columns)})
                    SELECT {selected} FROM res_partner t CROSS JOIN generate_series(1, %s) AS k
                     WHERE t.id = ANY(%s) LIMIT %s""",
                (rounds, ids, copies),
            )
            cr.execute("UPDATE res_partner SET commercial_partner_id = id WHERE is_registrant")
        cr.commit()
    subprocess.run(["psql", "-d", database, "-qc", "VACUUM ANALYZE res_partner"], check=True)


if __name__ == "__main__":
    fill(sys.argv[1], sys.argv[2], int(sys.argv[3]))
