"""Registry jobs at scale (``tools/job_scale/run``): registrants per second with 1, 2, 4 workers.

1. a template database (made once, kept): ``g2p_encryption`` and OCA's ``queue_job`` installed,
   ``--registrants`` registrants stored in the clear (a thousand made through the ORM, the rest
   copied by SQL with their own values), "Encrypt registry" off;
2. for each worker count: a copy of the template (``createdb -T``), a prefork Odoo with that
   many HTTP workers, ``queue_job`` loaded server-wide with the channel capacity and
   ``g2p_encryption.job_runners`` set to it, and no cron; "Encrypt registry" turned on through
   Settings, which starts the jobs; the time until every job is done, with the resident memory
   of every Odoo process sampled along the way (from /proc, the driver polls PostgreSQL, never
   the busy workers);
3. ``--kill-at``: in the run with 2 workers, one worker busy with a chunk is killed (SIGKILL) at
   that fraction of the chunks: the run must still end with every registrant encrypted once;
4. checks: no registrant left in the clear, the chunks' ``changed`` add up to the registrants,
   every chunk done once; a table (Markdown) of the figures.

The package, a module a step: ``cli`` (arguments, the runs) uses ``dataset`` (the template) and
``run`` (one measured run); ``harness`` gives the throwaway Odoo.
"""
