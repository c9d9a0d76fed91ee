"""Key custody: a master key split into Shamir shares, and the memory that holds it once unsealed.

In sealed custody the master key is never written to disk whole. The package, from the bottom up
(no module imports one above it):

* ``errors``: ``CustodyError`` and ``ShareRejected``;
* ``box``: sealed boxes, small secrets encrypted under a key kept elsewhere;
* ``shares``: Shamir shares (SLIP-39 words), the check value, ``ShareCollector``;
* ``ceremony``: ``PendingCeremony``, new shares waiting to be confirmed;
* ``instance``: the running server instance (boot id, master pid, start time);
* ``store``: ``InstanceStore``, that instance's private files in ``/dev/shm``.

Shares collected so far and a pending ceremony are kept in the store encrypted under a key that
the caller keeps elsewhere (the database): neither place alone holds a share. This package never
imports ``odoo``; the names below are its public API.
"""

from .box import new_box_key
from .ceremony import PendingCeremony
from .errors import CustodyError, ShareRejected
from .instance import instance_alive, instance_id, process_start_ticks, read_boot_id
from .shares import (
    KEY_SIZE,
    MAX_SHARES,
    MIN_THRESHOLD,
    ShareCollector,
    ShareSet,
    check_split_parameters,
    check_value,
    combine_shares,
    normalise_share,
    parse_share,
    split_key,
    verify_check_value,
)
from .store import SHM_DIR, InstanceStore, decode_key_file, encode_key_file, is_memory_backed

__all__ = [
    "KEY_SIZE",
    "MAX_SHARES",
    "MIN_THRESHOLD",
    "SHM_DIR",
    "CustodyError",
    "InstanceStore",
    "PendingCeremony",
    "ShareCollector",
    "ShareRejected",
    "ShareSet",
    "check_split_parameters",
    "check_value",
    "combine_shares",
    "decode_key_file",
    "encode_key_file",
    "instance_alive",
    "instance_id",
    "is_memory_backed",
    "new_box_key",
    "normalise_share",
    "parse_share",
    "process_start_ticks",
    "read_boot_id",
    "split_key",
    "verify_check_value",
]
