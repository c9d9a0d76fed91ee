"""Command line: the template, one run per worker count, the kill run, the table."""

import argparse
import os
import sys
import time

from harness import machine

from . import __doc__ as description
from .dataset import make_template, odoo_conf
from .run import Run


def out(text=""):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="tools/job_scale/run", description=description.split("\n\n")[0])
    parser.add_argument("--registrants", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, one run each (default 1,2,4)")
    parser.add_argument(
        "--kill-at", type=float, default=0.4, help="kill a worker at this fraction (2 workers)"
    )
    parser.add_argument("--fresh", action="store_true", help="make the template database again")
    parser.add_argument("--output", help="append the Markdown table to this file")
    # Given by tools/job_scale/run:
    for name in ("--python", "--odoo-bin", "--odoo-conf", "--queue-job-addons", "--template", "--database"):
        parser.add_argument(name, required=True)
    parser.add_argument("--work-dir", required=True)
    args = parser.parse_args(argv)
    args.worker_counts = [int(count) for count in args.workers.split(",") if count.strip()]
    return args


def row(result, label):
    killed = result["killed"]
    kill = f", worker {killed[0]} killed at chunk {killed[1]} of {killed[2]}" if killed else ""
    return (
        f"| {label} | {result['registrants']:,} | {result['seconds']:.1f} | {result['rate']:.0f} "
        f"| {result['chunks']} ({'/'.join(map(str, result['chunks_by_worker']))}) "
        f"| {result['chunk_ms_first']:.0f} / {result['chunk_ms_last']:.0f} "
        f"| {result['rss_first_max']:.0f} / {result['rss_early']:.0f} / {result['rss_late']:.0f} "
        f"/ {result['rss_max']:.0f} "
        f"| {result['left_in_clear']} | {result['changed']:,} | {result['job_state']}, "
        f"runs per chunk ≤ {result['max_attempts']}{kill} |"
    )


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.makedirs(os.path.join(args.work_dir, "job_scale"), exist_ok=True)
    conf = odoo_conf(
        args.odoo_conf, os.path.join(args.work_dir, "job_scale", "odoo.conf"), args.queue_job_addons
    )
    started = time.monotonic()
    if make_template(args, conf):
        seconds = time.monotonic() - started
        out(f"[job_scale] template {args.template}: {args.registrants} registrants in {seconds:.0f} s")
    runs = [(workers, None) for workers in args.worker_counts]
    if args.kill_at:
        runs.append((2, args.kill_at))
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        f"Machine: {machine.description()}; load average before: {load}",
        "",
        "| Run | Registrants | Seconds | Registrants/s | Chunks (per worker) | Chunk ms first 10% / last 10% "
        "| Worker RSS MB: start / at 10% / at 90%+ / max | Left in the clear | Changed | Job |",
        "|---|---:|---:|---:|---|---|---|---:|---:|---|",
    ]
    for workers, kill_at in runs:
        label = f"{workers} worker{'s' if workers > 1 else ''}" + (" (one killed)" if kill_at else "")
        out(f"[job_scale] {label}: running")
        result = Run(args, conf, workers, kill_at).measure()
        lines.append(row(result, label))
        out(lines[-1])
    lines.append("")
    lines.append(f"Load average after: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")
    out("\n".join(lines))
    if args.output:
        with open(args.output, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    return 0
