"""Check the tamper-evident audit logs of g2p_encryption in one database, from the command line.

    python3 tools/audit_check.py --config /etc/odoo/odoo.conf --database registry \
        [--anchor g2p.encryption.event=120:<hash>]

Run it with the Python that runs Odoo (``odoo`` importable). For every log chained by
``g2p.audit.chain`` (key and custody events, and any other) it reads the rows and the chain's
head with SQL, prints one line of summary (rows, head sequence and hash) and one line per problem:
a row changed after it was written, rows deleted (the last ones too, while the head stands), a
row inserted around the chain. ``--anchor`` gives a head recorded earlier outside the database
(the summary line of an earlier run): it exposes rows rewritten or removed since, even with the
head moved back. Exits 0 when every log is intact, 1 when a problem was found, 2 on a usage error.
Writes nothing.
"""

import argparse
import sys


def parse_anchors(values):
    anchors = {}
    for value in values or ():
        try:
            chain, rest = value.split("=", 1)
            sequence, digest = rest.split(":", 1)
            anchors[chain] = (int(sequence), digest)
        except ValueError:
            raise SystemExit(f"--anchor {value!r}: expected <log model>=<sequence>:<hash>") from None
    return anchors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", "-c", required=True, help="the Odoo server configuration file")
    parser.add_argument("--database", "-d", required=True)
    parser.add_argument("--anchor", action="append", help="<log model>=<sequence>:<hash> recorded earlier")
    args = parser.parse_args(argv)
    anchors = parse_anchors(args.anchor)

    import odoo
    from odoo.modules.registry import Registry

    odoo.tools.config.parse_config(["--config", args.config, "--database", args.database, "--log-level=warn"])
    registry = Registry(args.database)
    found = 0
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        logs = sorted(
            name for name in registry.descendants(["g2p.audit.chain"], "_inherit") if not env[name]._abstract
        )
        for name in logs:
            log = env[name]
            result = log._audit_check(anchor=anchors.get(name))
            report = log._audit_report(result).splitlines()
            found += len(result["problems"])
            verdict = "no problem" if not result["problems"] else f"{len(result['problems'])} problem(s)"
            sys.stdout.write(f"{name}: {report[0]} {verdict}\n")
            for line in report[1:]:
                sys.stdout.write(f"  {line}\n")
        cr.rollback()
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
