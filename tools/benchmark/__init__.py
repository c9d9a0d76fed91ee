"""Benchmark of registry encryption, run inside Odoo by ``tools/bench`` (``python -m benchmark``).

For each configuration (encryption off; ``local``; ``keymanager`` envelope; ``keymanager`` direct,
the per-record baseline of OpenG2P's module) it times, on N registrants with the default
encrypted fields:

* create: one ``create`` call with N dicts;
* write: one encrypted field changed on all N, in one ``write`` call;
* read: ``web_search_read`` of the N rows (encrypted fields and display name), as a member of
  Crypto Admin with "Decrypt registry" on;

each the median of several runs, every run on fresh records inside a savepoint that is rolled
back. The KeyManager rows talk over HTTP to the emulator, started in this process on 127.0.0.1
with 5 ms of added latency per call; its counters give the KeyManager calls of each operation.
The physical floor is the same number of bare AES-256-GCM operations in this process. Nothing is
committed: the whole transaction is rolled back at the end.

    python -m benchmark --config odoo.conf --database DB [--records 1000] [--runs 3]   (tools/ on the path)

The package, a module a step: ``cli`` (arguments, Odoo, the output file) runs the ``scenarios``
(the configurations compared, their providers, the order of the runs), which time operations with
``measure`` on the values of ``data``; ``report`` writes the tables and verdicts. A configuration
is one entry of ``scenarios.CONFIGURATIONS``.
"""
