# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The Odoo server instances that hold, or wait for, a provider's sealed master key.

Each Odoo server (one machine, or one container) unseals on its own: the rebuilt key lives in its
memory only (``core/custody/store.py``). One record per (provider, server instance) says whether
that instance is sealed or unsealed, how many shares were entered there and when it last changed,
so that a multi-server deployment shows which servers are still sealed. Records are written when
something happens (a share entered, unseal, seal, rekey), never on a read path. A restarted server
is a new instance: the record of the old one is marked stopped when this machine notices.

``ServerMemory`` is this server's memory for one provider: the unsealed key, the shares entered
so far and a pending ceremony. A clean shutdown of the server removes its files: the master
process (never a prefork worker) does it at exit.
"""

import atexit
import hashlib
import logging
import os
import socket
import threading

import odoo
from odoo import fields, models
from odoo.tools import config

from ..core import custody
from ..core.errors import DecryptionError

_logger = logging.getLogger(__name__)

# Server configuration option: another memory-backed directory than /dev/shm for unsealed keys.
CUSTODY_DIR_OPTION = "g2p_encryption_custody_dir"

_INSTANCE_IDS = {}
_exit_lock = threading.Lock()
_exit_registered = []


def server_master_pid():
    """Pid of this Odoo server's master process.

    In prefork mode (``--workers``) the HTTP and cron workers are forked from the master, and
    ``odoo.service.server.server`` (made before the fork) holds the master's pid; the gevent
    process is started by the master too. In threaded mode, and in ``odoo shell`` or a test run,
    the server is this process.
    """
    if odoo.evented:
        return os.getppid()
    from odoo.service import server as server_module

    return getattr(server_module.server, "pid", None) or os.getpid()


def current_instance_id():
    """Id of the running server instance (boot id, master pid and its start time)."""
    pid = server_master_pid()
    instance = _INSTANCE_IDS.get(pid)
    if instance is None:
        instance = _INSTANCE_IDS[pid] = custody.instance_id(pid)
    return instance


def custody_store():
    """The memory store of this server instance."""
    directory = config.get(CUSTODY_DIR_OPTION) or custody.SHM_DIR
    return custody.InstanceStore(current_instance_id(), directory)


def remove_files_at_exit():
    """At exit of the master process, remove this server's files (unsealed keys, shares entered).

    Registered once per process when custody is first used or the registry loads. A prefork worker
    inherits the handler from the master and exits through ``sys.exit`` too: it must leave the
    files to the master and its other workers, so the handler does nothing unless this process is
    the master. A reload (``SIGHUP``: Odoo executes itself again, same pid) does not run it.
    """
    with _exit_lock:
        if not _exit_registered:
            atexit.register(_remove_own_files)
            _exit_registered.append(True)


def _remove_own_files():
    if os.getpid() != server_master_pid():
        return 0
    try:
        removed = custody_store().remove_instance()
    except (custody.CustodyError, OSError):
        return 0
    if removed:
        _logger.info("Removed %s custody files of this server at shutdown", removed)
    return removed


class ServerMemory:
    """This server's memory for one provider: the unsealed key, shares entered, a pending ceremony.

    The files are named after the database and the provider (no secret in the name). Shares entered
    so far and a pending ceremony are sealed boxes; the key that opens them is kept in the
    database (``progress_key`` of this server's record, and the ceremony's own key).
    """

    def __init__(self, env, provider_id):
        self.env = env
        self.provider_id = provider_id
        database = hashlib.sha256(env.cr.dbname.encode()).hexdigest()[:12]
        self.scope = f"{database}-p{provider_id}"
        self.store = custody_store()
        remove_files_at_exit()

    def has(self, kind):
        try:
            return self.store.exists(self.scope, kind)
        except custody.CustodyError:
            return False

    def get(self, kind):
        return self.store.get(self.scope, kind)

    def put(self, kind, data):
        self.store.put(self.scope, kind, data)

    def remove(self, kind):
        return self.store.remove(self.scope, kind)

    def forget(self):
        """Forget everything this server holds for the provider (sealing)."""
        return self.store.remove_scope(self.scope)

    # The unsealed key ----------------------------------------------------------------------------
    def key(self, expected_check_value):
        """The unsealed key if this server holds the right one; a wrong or broken one is removed.

        A key written aside by a rekey (``keep_next_key``) replaces the current one as soon as the
        database says it is the master key now, i.e. once the rekey committed.
        """
        found = None
        for kind in ("key", "key-next"):
            try:
                data = self.get(kind)
                key = custody.decode_key_file(data) if data is not None else None
            except custody.CustodyError as error:
                _logger.warning(
                    "Unsealed key of provider %s unusable on this server: %s", self.provider_id, error
                )
                self.remove(kind)
                continue
            if key is not None and custody.verify_check_value(key, expected_check_value):
                found = key
                if kind == "key-next":
                    self.put("key", data)
                    self.remove("key-next")
                break
        if found is None and self.has("key"):
            # The master key was replaced (rekeyed) elsewhere: this server must be unsealed again.
            _logger.warning(
                "Unsealed key of provider %s is not its current master key: sealed", self.provider_id
            )
            self.remove("key")
            self.remove("key-next")
        return found

    def keep_key(self, key):
        self.store.remove_stale()
        self.put("key", custody.encode_key_file(key))
        self.remove("key-next")

    def keep_next_key(self, key):
        """Write the key a rekey makes next to the current one (see ``key``)."""
        self.put("key-next", custody.encode_key_file(key))

    # Shares entered so far -----------------------------------------------------------------------
    def progress(self, kind, identifier):
        """Clear header of the shares of ``kind`` collected here for share set ``identifier``, or {}."""
        try:
            blob = self.get(kind)
            header = custody.ShareCollector.peek(blob) if blob else {}
        except (custody.CustodyError, DecryptionError):
            return {}
        if header.get("identifier") != identifier:
            return {}  # shares of another share set: they count for nothing
        return header

    def collector(self, kind, server, identifier, threshold):
        """The shares of ``kind`` entered here so far towards share set ``identifier``."""
        collector = None
        blob = self.get(kind)
        progress_key = server.sudo().progress_key
        if blob and progress_key:
            try:
                collector = custody.ShareCollector.unseal(blob, bytes.fromhex(progress_key))
            except (DecryptionError, custody.CustodyError, ValueError):
                collector = None
        if collector is None or (collector.identifier, collector.threshold) != (identifier, threshold):
            collector = custody.ShareCollector(identifier, threshold)
        return collector

    def keep_collector(self, kind, server, collector):
        server = server.sudo()
        if not server.progress_key:
            server.progress_key = os.urandom(32).hex()
        self.put(kind, collector.seal(bytes.fromhex(server.progress_key)))

    # This server's record ------------------------------------------------------------------------
    def server(self, lock=False):
        """This server's record for the provider (made on first use), locked when asked."""
        servers = self.env["g2p.encryption.custody.server"].sudo()
        instance = current_instance_id()
        server = servers.search(
            [("provider_id", "=", self.provider_id), ("instance_id", "=", instance)], limit=1
        )
        if not server:
            servers._mark_stopped_here(instance)
            server = servers.create(
                {"provider_id": self.provider_id, "instance_id": instance, "hostname": socket.gethostname()}
            )
        if lock:
            self.env.cr.execute(
                "SELECT id FROM g2p_encryption_custody_server WHERE id = %s FOR UPDATE", [server.id]
            )
        return server

    def update_server(self, state=None, **vals):
        server = self.server()
        if state:
            vals["state"] = state
        vals["last_change"] = fields.Datetime.now()
        server.write(vals)
        return server


class CustodyServer(models.Model):
    _name = "g2p.encryption.custody.server"
    _description = "Server Instance of a Sealed Provider"
    _order = "last_change desc, id desc"
    _rec_name = "hostname"

    provider_id = fields.Many2one("g2p.encryption.provider", required=True, readonly=True, ondelete="cascade")
    hostname = fields.Char(string="Server", required=True, readonly=True)
    instance_id = fields.Char(string="Server instance", required=True, readonly=True)
    state = fields.Selection(
        [("sealed", "Sealed"), ("unsealed", "Unsealed"), ("stopped", "Stopped")],
        required=True,
        readonly=True,
        default="sealed",
    )
    shares_entered = fields.Integer(readonly=True)
    rejected_shares = fields.Integer(readonly=True)
    threshold = fields.Integer(compute="_compute_threshold", string="Shares needed")
    last_change = fields.Datetime(readonly=True, default=fields.Datetime.now)
    is_this_server = fields.Boolean(compute="_compute_is_this_server")
    # Opens the shares entered so far, which are kept encrypted in the server's memory store; the
    # two together never outlive the unsealing. Nobody reads it through the ORM.
    progress_key = fields.Char(groups=fields.NO_ACCESS, copy=False)

    _sql_constraints = [
        (
            "instance_unique",
            "unique(provider_id, instance_id)",
            "One record per provider and server instance.",
        ),
    ]

    def _compute_threshold(self):
        custodies = (
            self.env["g2p.encryption.custody"].sudo().search([("provider_id", "in", self.provider_id.ids)])
        )
        thresholds = {custody_record.provider_id.id: custody_record.threshold for custody_record in custodies}
        for record in self:
            record.threshold = thresholds.get(record.provider_id.id, 0)

    def _compute_is_this_server(self):
        here = current_instance_id()
        for record in self:
            record.is_this_server = record.instance_id == here

    def _mark_stopped_here(self, current_instance):
        """Mark stopped the records of this machine's instances that no longer run."""
        hostname = socket.gethostname()
        candidates = self.sudo().search(
            [("hostname", "=", hostname), ("state", "!=", "stopped"), ("instance_id", "!=", current_instance)]
        )
        stopped = candidates.filtered(lambda record: not custody.instance_alive(record.instance_id))
        if stopped:
            stopped.write(
                {
                    "state": "stopped",
                    "last_change": fields.Datetime.now(),
                    "progress_key": False,
                    "shares_entered": 0,
                }
            )
        return stopped
