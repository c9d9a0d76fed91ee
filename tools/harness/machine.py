"""What a measurement ran on: CPUs, memory, Python, PostgreSQL."""

import contextlib
import os
import subprocess
import sys


def proc_value(path, name):
    """The value of the line ``name: value`` of a /proc file, or None."""
    with contextlib.suppress(OSError), open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    return None


def postgres_version():
    answer = subprocess.run(
        ["psql", "-d", "postgres", "-Atc", "SHOW server_version"], capture_output=True, text=True, check=False
    )
    return answer.stdout.strip() or "?"


def description():
    """One line: CPUs and their model, memory, Python and PostgreSQL versions."""
    cpu = proc_value("/proc/cpuinfo", "model name") or "?"
    memory = proc_value("/proc/meminfo", "MemTotal")
    memory = f"{int(memory.split()[0]) / 1024 / 1024:.0f} GB RAM" if memory else "?"
    python = sys.version.split()[0]
    return f"{os.cpu_count()} CPUs ({cpu}), {memory}, Python {python}, PostgreSQL {postgres_version()}"
