"""Which server instance is running: boot id, master pid and its start time, read from /proc.

Each Odoo server unseals on its own, and a restart must find nothing unsealed: what an instance
keeps is named after its id, which changes with a new process (pid or start time) or a reboot.
"""

from .errors import CustodyError


def read_boot_id():
    """The kernel's boot id without dashes (changes at every boot)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip().replace("-", "")
    except OSError:
        raise CustodyError("cannot read the boot id (/proc/sys/kernel/random/boot_id)") from None


def process_start_ticks(pid):
    """Start time of process ``pid`` since boot, in clock ticks (/proc/<pid>/stat field 22); or None."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    fields_after_name = text.rsplit(")", 1)[-1].split()
    try:
        return fields_after_name[19]
    except IndexError:
        return None


def instance_id(master_pid, boot_id=None):
    """Id of the running server whose master process is ``master_pid``: boot id, pid, start time.

    A restart (new pid or new start time) or a reboot (new boot id) gives a new id.
    """
    ticks = process_start_ticks(master_pid)
    if ticks is None:
        raise CustodyError(f"process {master_pid} is not running")
    return f"{(boot_id or read_boot_id())[:16]}-{int(master_pid)}-{ticks}"


def instance_alive(instance, boot_id=None):
    """Tell whether the server instance named ``instance`` still runs on this machine."""
    parts = str(instance).split("-")
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    boot, pid, ticks = parts
    if boot != (boot_id or read_boot_id())[:16]:
        return False
    return process_start_ticks(int(pid)) == ticks
