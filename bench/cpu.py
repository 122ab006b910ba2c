#!/usr/bin/env python3
"""make bench's CPU accounting: runs a command and prints, after its own
output, the CPU (user + system) each group of processes used while it ran,
in cores: the service (acmecrm), PostgreSQL, the load generator (wrk,
pgbench or acmecrm simulate), the bare HTTP server, everything else, and
what stayed idle. Read from /proc; Linux only.

    bench/cpu.py OUT [--from FILE] -- COMMAND [ARGS...]

OUT gets "group cores" lines. With --from, the interval starts when FILE
appears (bench/webhooks.lua creates it when wrk starts sending), not when
the command starts.
"""
import os
import resource
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def group(comm, cmdline):
    if comm.startswith("postgres"):
        return "postgres"
    if comm in ("wrk", "pgbench") or " simulate " in cmdline:
        return "loadgen"
    if comm == "bareserver":
        return "bareserver"
    if comm == "acmecrm":
        return "service"
    return "other"


def snapshot():
    ticks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline") as f:
                cmdline = " " + f.read().replace("\0", " ")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        t = int(fields[11]) + int(fields[12])
        # A process's CPU includes what its ended children used (PostgreSQL
        # backends of connections that closed meanwhile end up in the
        # postmaster's), except for this script's own: the command's
        # comes from its rusage below.
        if int(pid) != os.getpid():
            t += int(fields[13]) + int(fields[14])
        ticks[pid] = (group(comm, cmdline), t)
    return ticks


def idle_ticks():
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    return int(cpu[4]) + int(cpu[5])  # idle + iowait


def main():
    out, args, start_file = sys.argv[1], sys.argv[2:], None
    if args[:1] == ["--from"] and len(args) > 1:
        start_file, args = args[1], args[2:]
    sep, cmd = args[:1], args[1:]
    if sep != ["--"] or not cmd:
        sys.exit(__doc__)
    def children():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (r.ru_utime + r.ru_stime) * HZ
    if start_file is not None and os.path.exists(start_file):
        os.remove(start_file)  # left by an earlier run
    proc = subprocess.Popen(cmd)
    if start_file is not None:
        while not os.path.exists(start_file) and proc.poll() is None:
            time.sleep(0.001)
        if proc.poll() is not None:
            sys.exit(f"cpu.py: {cmd[0]} ended before {start_file} appeared")
    # The command's CPU before the interval is in its /proc entry now, and
    # is subtracted below once the command has ended.
    before, idle0, own0, t0 = snapshot(), idle_ticks(), children(), time.monotonic()
    rc = proc.wait()
    idle1, own1, elapsed = idle_ticks(), children(), time.monotonic() - t0
    # Processes that end with the command (PostgreSQL's backends of its
    # connections) take a moment to exit and be reaped into their parent's
    # CPU: wait for that before reading the processes' CPU.
    time.sleep(0.5)
    after = snapshot()
    used = {}
    for pid, (g, t) in after.items():
        used[g] = used.get(g, 0) + t - before.get(pid, (g, 0))[1]
    # A process that ended meanwhile: all its CPU is now in its parent's,
    # counted above; what it had used before is not part of the interval.
    for pid, (g, t) in before.items():
        if pid not in after:
            used[g] = used.get(g, 0) - t
    # The command itself has ended: its CPU comes from the rusage of
    # waited-for children.
    own = group(os.path.basename(cmd[0]), " " + " ".join(cmd) + " ")
    used[own] = used.get(own, 0) + own1 - own0
    with open(out, "w") as f:
        for g in ("service", "postgres", "loadgen", "bareserver", "other"):
            f.write(f"{g} {used.get(g, 0) / HZ / elapsed:.3f}\n")
        f.write(f"idle {(idle1 - idle0) / HZ / elapsed:.3f}\n")
    sys.exit(rc)


if __name__ == "__main__":
    main()
