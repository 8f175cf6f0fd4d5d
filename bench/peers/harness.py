#!/usr/bin/env python3
"""Side-by-side benchmark of Switchyard against gearmand and beanstalkd (issue 7).

Started by `bench/peers/run`, which installs the peers and builds everything first. For each
workload, system and run it starts the server and its workers afresh on a free loopback port,
runs one client, reads CPU time and peak memory from /proc, and stops what it started, by process
id. It prints one table of medians. Python 3 standard library only.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")
WORKERS = 2


# ---------------------------------------------------------------- processes and /proc


def cpu_seconds(pid):
    """utime + stime of one process (all its threads), in seconds; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5)
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def memory_kib(pid, key="VmHWM"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def connectable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Processes:
    """Everything the harness starts, stopped by process id (also on SIGINT/SIGTERM, see main)."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.procs = []  # (Popen, name)

    def start(self, name, argv, **kwargs):
        log = open(os.path.join(self.logdir, f"{name}.log"), "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)
        log.close()
        self.procs.append((proc, name))
        return proc

    def stop_all(self):
        for proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc, name in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"  {name} (pid {proc.pid}) did not stop in 20 s: SIGKILL", file=sys.stderr)
                proc.kill()
                proc.wait()
        self.procs = []


# ---------------------------------------------------------------- the three systems


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk
    return data


class SwitchyardStatus:
    """SERVER_STATUS over the binary protocol (docs/PROTOCOL.md sections 2, 3, 6)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        name = b"peers-harness"
        body = struct.pack(">IHHB", 0x53575944, 1, 1, len(name)) + name + struct.pack(">H", 0)
        self._send(0x01, body)
        kind, _ = self._read()
        if kind != 0x81:
            raise RuntimeError(f"switchyard handshake answered frame type {kind:#x}")

    def _send(self, kind, body):
        self.sock.sendall(struct.pack(">IBBI", 6 + len(body), kind, 0, 0) + body)

    def _read(self):
        length, kind, _, _ = struct.unpack(">IBBI", read_exact(self.sock, 10))
        return kind, read_exact(self.sock, length - 6)

    def get(self):
        self._send(0x04, b"")
        kind, body = self._read()
        if kind != 0x87:
            raise RuntimeError(f"switchyard status answered frame type {kind:#x}")
        return json.loads(body)

    def close(self):
        self.sock.close()


class TextConn:
    """A persistent connection for a text protocol's status command (gearman admin, beanstalkd),
    so that polling opens no connection per poll."""

    def __init__(self, port):
        self.port = port
        self.sock = None

    def request(self, command, complete):
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sock.sendall(command)
        data = b""
        while not complete(data):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed")
            data += chunk
        return data.decode(errors="replace")

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class System:
    """One server and its workers, started for one measurement."""

    label = "?"

    def __init__(self, env, procs):
        self.env = env
        self.procs = procs
        self.port = free_port()
        self.server = None
        self.workers = []  # pids
        self.admin = TextConn(self.port)

    def pids(self):
        return [self.server.pid] + list(self.workers)

    def anomalies(self):
        """What made a run unclean, as text (none known for the peers)."""
        return []

    def cpu(self):
        return sum(cpu_seconds(p) for p in self.pids())

    def pause_workers(self):
        for pid in self.workers:
            os.kill(pid, signal.SIGSTOP)

    def resume_workers(self):
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def stop(self):
        self.admin.close()
        self.resume_workers()
        self.procs.stop_all()


class Switchyard(System):
    def __init__(self, env, procs, store="memory", sync="full", handler="echo"):
        super().__init__(env, procs)
        self.store, self.sync = store, sync
        self.label = "Switchyard memory" if store == "memory" else f"Switchyard sqlite {sync}"
        self.datadir = tempfile.mkdtemp(prefix="switchyard-", dir=env.tmp)
        self.status = None

    def start(self):
        argv = [self.env.switchyard, "serve", "--listen", f"127.0.0.1:{self.port}", "--workers", str(WORKERS),
                "--store", self.store, "--sync", self.sync, "--data-dir", self.datadir,
                "--shutdown-timeout", "0", "--log-level", "warning"]
        self.server = self.procs.start("switchyard", argv)
        wait_until(lambda: connectable(self.port) or self.server.poll() is not None, 60, "switchyard to listen")
        if self.server.poll() is not None:
            raise RuntimeError(f"switchyard serve exited with {self.server.returncode} (log: {self.env.logs})")
        self.status = SwitchyardStatus(self.port)

        def ready():
            workers = self.status.get()["workers"]
            return len(workers) == WORKERS and all(w["state"] == "ready" for w in workers)

        wait_until(ready, 60, "switchyard's workers")
        self.workers = [w["pid"] for w in self.status.get()["workers"]]

    def client(self, handler, tasks, concurrency, connections, payload, mode):
        argv = [self.env.switchyard, "bench", "--server", f"127.0.0.1:{self.port}", "--handler", handler,
                "-n", str(tasks), "-c", str(concurrency), "-k", str(connections), "-p", str(payload), "--json"]
        return argv + (["--background"] if mode == "bg" else [])

    def done_count(self):
        s = self.status.get()
        return s["succeeded"] + s["failed"] if s["queued"] == 0 and s["running"] == 0 else -1

    def anomalies(self):
        """Worker restarts and failed tasks since start: a run with either is not clean."""
        s = self.status.get()
        problems = []
        if s["workerRestarts"]:
            problems.append(f"{s['workerRestarts']} worker restarts")
        if s["failed"]:
            problems.append(f"{s['failed']} failed tasks")
        if problems:
            print(f"  WARNING {self.label}: {', '.join(problems)} (see {self.env.logs}/switchyard.log)",
                  file=sys.stderr, flush=True)
        return problems

    def stop(self):
        if self.status:
            self.status.close()
        super().stop()
        # Workers run in their own process groups; the server stops them, but make sure.
        for pid in self.workers:
            if comm(pid) == "switchyard":
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.datadir, ignore_errors=True)


class Gearmand(System):
    label = "gearmand"

    def __init__(self, env, procs, handler="echo", buckets=991):
        super().__init__(env, procs)
        self.handler = handler
        self.buckets = buckets

    def start(self, workers=WORKERS):
        argv = ["gearmand", "--listen", "127.0.0.1", "--port", str(self.port), "--threads", str(self.env.gearmand_threads),
                "--log-file", "stderr", "--verbose", "ERROR", "--pid-file", os.path.join(self.env.tmp, f"gearmand-{self.port}.pid"),
                "--hashtable-buckets", str(self.buckets)]
        self.server = self.procs.start("gearmand", argv)
        wait_until(lambda: connectable(self.port) or self.server.poll() is not None, 30, "gearmand to listen")
        if self.server.poll() is not None:
            raise RuntimeError(f"gearmand exited with {self.server.returncode}")
        for i in range(workers):
            w = self.procs.start("gm_worker", [self.env.bin("gm_worker"), str(self.port), self.handler])
            self.workers.append(w.pid)
        if workers:
            wait_until(lambda: self.function_status()[2] == workers, 30, "gearman workers to register")

    def function_status(self):
        """(queued + running, running, available workers) for the handler, from the admin `status`."""
        text = self.admin.request(b"status\n", lambda d: d.endswith(b".\n"))
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) == 4 and parts[0] == self.handler:
                return int(parts[1]), int(parts[2]), int(parts[3])
        return 0, 0, 0

    def client(self, handler, tasks, concurrency, connections, payload, mode):
        argv = [self.env.bin("gm_client"), "-P", str(self.port), "-f", handler, "-n", str(tasks),
                "-c", str(concurrency), "-k", str(connections), "-p", str(payload)]
        return argv + (["-b"] if mode == "bg" else [])

    def done_count(self):
        total, _, _ = self.function_status()
        return self.submitted if total == 0 else -1


class Beanstalkd(System):
    def __init__(self, env, procs, handler="echo", reply=False, binlog=None):
        super().__init__(env, procs)
        self.handler, self.reply, self.binlog = handler, reply, binlog
        self.label = {None: "beanstalkd", "default": "beanstalkd -b", "f0": "beanstalkd -b -f0"}[binlog]
        self.logdir = tempfile.mkdtemp(prefix="beanstalkd-", dir=env.tmp) if binlog else None

    def start(self, workers=WORKERS):
        argv = ["beanstalkd", "-l", "127.0.0.1", "-p", str(self.port)]
        if self.binlog:
            argv += ["-b", self.logdir] + (["-f0"] if self.binlog == "f0" else [])
        self.server = self.procs.start("beanstalkd", argv)
        wait_until(lambda: connectable(self.port) or self.server.poll() is not None, 30, "beanstalkd to listen")
        if self.server.poll() is not None:
            raise RuntimeError(f"beanstalkd exited with {self.server.returncode}")
        for i in range(workers):
            argv = [self.env.bin("bs_worker"), str(self.port), self.handler, self.handler] + (["reply"] if self.reply else [])
            self.workers.append(self.procs.start("bs_worker", argv).pid)
        if workers:
            wait_until(lambda: self.tube_stat("current-waiting") == workers, 30, "beanstalkd workers to reserve")

    def tube_stat(self, key):
        """A number from `stats-tube`, or -1 while the tube does not exist."""

        def complete(d):
            if d.startswith(b"NOT_FOUND"):
                return True
            head, sep, _ = d.partition(b"\r\n")
            return bool(sep) and len(d) >= len(head) + 2 + int(head.split()[1]) + 2

        text = self.admin.request(f"stats-tube {self.handler}\r\n".encode(), complete)
        for line in text.splitlines():
            if line.startswith(key + ":"):
                return int(line.split(":")[1])
        return -1

    def client(self, handler, tasks, concurrency, connections, payload, mode):
        if mode == "fg":
            mode = "reply" if self.reply else "drain"
        return [self.env.bin("bs_client"), "-P", str(self.port), "-t", handler, "-m", mode, "-n", str(tasks),
                "-c", str(concurrency), "-k", str(connections), "-p", str(payload)]

    def done_count(self):
        return self.tube_stat("cmd-delete")

    def stop(self):
        super().stop()
        if self.logdir:
            shutil.rmtree(self.logdir, ignore_errors=True)


# ---------------------------------------------------------------- measurements


def run_client(argv, timeout):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{os.path.basename(argv[0])} exited {out.returncode}: {out.stderr.strip()[-400:]}")
    return json.loads(lines[-1])


def memory_figures(system):
    for pid in system.workers:
        if memory_kib(pid) == 0:
            print(f"  WARNING {system.label}: worker {pid} is gone; its memory is missing from workers MiB",
                  file=sys.stderr, flush=True)
    return {
        "server_mib": memory_kib(system.server.pid) / 1024,
        "workers_mib": sum(memory_kib(p) for p in system.workers) / 1024 if system.workers else None,
    }


def measure_foreground(env, system, w):
    """(a), (b), (d): wait for each result."""
    system.start()
    cpu0 = system.cpu()
    result = run_client(system.client(w["handler"], w["tasks"], w["c"], w["k"], w["payload"], "fg"), env.timeout)
    cpu = system.cpu() - cpu0
    return [dict(throughput=result["throughput"], p50_us=result.get("p50_us"), p99_us=result.get("p99_us"),
                 cpu_s=cpu, **memory_figures(system))]


def measure_submit_drain(env, system, w, drain=True):
    """(c), (e), (f): background submits with the workers stopped (SIGSTOP), then SIGCONT and time
    until the server's counters show all done. Switchyard cannot start with 0 workers; stopping the
    workers of all three systems the same way keeps the submit phase alone."""
    system.start()
    system.pause_workers()
    base = system.done_count() if isinstance(system, Switchyard) else 0
    base = max(base, 0)
    system.submitted = w["tasks"]
    rss0 = memory_kib(system.server.pid, "VmRSS")
    cpu0 = system.cpu()
    result = run_client(system.client(w["handler"], w["tasks"], w["c"], w["k"], w["payload"], "bg"), env.timeout)
    cpu1 = system.cpu()
    submit = dict(throughput=result["throughput"], p50_us=result.get("p50_us"), p99_us=result.get("p99_us"),
                  cpu_s=cpu1 - cpu0, **memory_figures(system))
    submit["rss_mib"] = memory_kib(system.server.pid, "VmRSS") / 1024
    # The resident memory that is not mapped files (the program and its shared libraries, shared with
    # other processes that map them): the heap that holds the queue. Nothing drains, so the end is the peak.
    submit["anon_mib"] = memory_kib(system.server.pid, "RssAnon") / 1024
    submit["bytes_per_task"] = (memory_kib(system.server.pid, "VmHWM") - rss0) * 1024 / w["tasks"]
    if not drain:
        return [submit]
    start = time.monotonic()
    system.resume_workers()
    target = base + w["tasks"]
    wait_until(lambda: system.done_count() >= target, env.timeout, f"{system.label} to drain", interval=0.002)
    seconds = time.monotonic() - start
    drained = dict(throughput=w["tasks"] / seconds, p50_us=None, p99_us=None, cpu_s=system.cpu() - cpu1,
                   **memory_figures(system))
    return [submit, drained]


def measure_raw(env, w):
    result = run_client([env.bin("rawsha"), "-n", str(w["tasks"]), "-p", str(w["payload"]), "-w", str(WORKERS)],
                        env.timeout)
    return [dict(throughput=result["throughput"], p50_us=None, p99_us=None, cpu_s=None, server_mib=None,
                 workers_mib=None)]


# ---------------------------------------------------------------- workloads


def workloads(quick):
    def n(full, small):
        return small if quick else full

    echo = dict(handler="echo", payload=16)
    a = [
        ("switchyard", dict(store="memory")), ("switchyard", dict(store="sqlite")),
        ("gearmand", {}), ("beanstalkd", dict(reply=True)), ("beanstalkd", dict(reply=False)),
    ]
    bg = [("switchyard", dict(store="memory")), ("switchyard", dict(store="sqlite")), ("gearmand", {}),
          ("beanstalkd", {})]
    return [
        dict(id="a1", title="(a) echo 16 B, 1 conn x 1000 in flight", kind="fg", tasks=n(200_000, 5_000), c=1000, k=1,
             systems=a, metric="throughput", **echo),
        dict(id="a16", title="(a) echo 16 B, 16 conns x 64 in flight", kind="fg", tasks=n(200_000, 5_000), c=1024,
             k=16, systems=a, metric="throughput", **echo),
        dict(id="b", title="(b) echo 16 B, 1 in flight (latency)", kind="fg", tasks=n(10_000, 1_000), c=1, k=1,
             systems=a[:4], metric="p50_us", **echo),
        dict(id="c", title="(c) background submits (1 conn x 1000 in flight), then drain", kind="bg", tasks=n(200_000, 5_000), c=1000, k=1,
             systems=bg, metric="throughput", **echo),
        dict(id="d", title="(d) sha256 4 KiB, 1 conn x 1000 in flight", kind="fg", tasks=n(50_000, 2_000), c=1000,
             k=1, handler="sha256", payload=4096, systems=a + [("raw", {})], metric="throughput"),
        dict(id="e", title="(e) durable background submits, 1 conn x 1000 in flight", kind="submit",
             tasks=n(20_000, 1_000), c=1000, k=1, metric="throughput", reference="Switchyard sqlite full",
             systems=[("switchyard", dict(store="sqlite", sync="full")), ("switchyard", dict(store="sqlite", sync="normal")),
                      ("beanstalkd", dict(binlog="f0")), ("beanstalkd", dict(binlog="default"))], **echo),
        dict(id="f", title="(f) queued 64 B tasks, none draining",
             kind="submit", tasks=n(1_000_000, 20_000), c=1000, k=1, handler="echo", payload=64, metric="server_mib",
             systems=bg),
    ]


def make_system(env, procs, name, options, handler, kind, tasks):
    if name == "switchyard":
        return Switchyard(env, procs, handler=handler, **options)
    if name == "gearmand":
        # Its hash tables hold every live job: the in-flight ones for foreground work (its default
        # of 991 buckets is enough), all of them for background submits. With 991 buckets each
        # background submit got slower as the queue grew (28k/s for the first 100,000 jobs, 10k/s
        # for the third 100,000; 4.9k/s on average to 1,000,000), so those runs get one bucket
        # per job, as gearmand's --hashtable-buckets help suggests for large queues.
        return Gearmand(env, procs, handler=handler, buckets=991 if kind == "fg" else max(991, tasks))
    system = Beanstalkd(env, procs, handler=handler, **options)
    if kind == "fg":  # beanstalkd has no reply: say which substitute was measured
        system.label += " reply" if system.reply else " put-delete"
    return system


def measure(env, w, name, options):
    """One run: a list of rows (two for submit-then-drain)."""
    if name == "raw":
        return ["raw libcrypto, no scheduler"], measure_raw(env, w)
    # Flush what earlier runs (and anything else on the machine) left dirty, so that a run that
    # fsyncs does not pay for the previous one's writeback: without this, beanstalkd -f0 right after
    # the Switchyard SQLite runs measured 340 puts/s, and 6,000 alone.
    os.sync()
    procs = Processes(env.logs)
    env.current = procs
    system = make_system(env, procs, name, options, w["handler"], w["kind"], w["tasks"])
    try:
        if w["kind"] == "fg":
            labels, figures = [system.label], measure_foreground(env, system, w)
        elif w["kind"] == "bg":
            labels, figures = [system.label, system.label], measure_submit_drain(env, system, w)
        else:
            labels, figures = [system.label], measure_submit_drain(env, system, w, drain=False)
        try:
            problems = system.anomalies()
        except (OSError, RuntimeError) as error:
            problems = [f"status unreadable after the run: {error}"]
        for fig in figures:
            fig["anomalies"] = problems
        return labels, figures
    finally:
        system.stop()
        env.current = None


# ---------------------------------------------------------------- the table


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values):
    values = [v for v in values if v is not None]
    if len(values) < 2 or not statistics.median(values):
        return None
    return (max(values) - min(values)) / statistics.median(values) * 100


def fmt(value, digits=0):
    if value is None:
        return "-"
    if value >= 1000:
        digits = 0
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def table(rows):
    """rows: dicts with workload, system, runs (list of measurement dicts), metric, reference."""
    header = ["workload", "system", "tasks/s", "p50 µs", "p99 µs", "CPU s", "server MiB", "workers MiB",
              "spread", "Switchyard ÷ this"]
    out = [header]
    by_workload = {}
    for row in rows:
        by_workload.setdefault(row["workload"], []).append(row)
    for workload, group in by_workload.items():
        metric = group[0]["metric"]
        ref_label = group[0]["reference"]
        ref = next((r for r in group if r["system"] == ref_label), None)
        ref_value = median([m[metric] for m in ref["runs"]]) if ref else None
        for row in group:
            runs = row["runs"]
            value = median([m[metric] for m in runs])
            ratio = "-"
            if row is not ref and ref_value and value:
                ratio = f"{ref_value / value:.2f}x"
            s = spread([m["throughput"] for m in runs])
            unclean = sum(1 for m in runs if m.get("anomalies"))
            out.append([
                workload, row["system"] + (f" [!{unclean}]" if unclean else ""), fmt(median([m["throughput"] for m in runs])),
                fmt(median([m["p50_us"] for m in runs]), 1), fmt(median([m["p99_us"] for m in runs]), 1),
                fmt(median([m["cpu_s"] for m in runs]), 2), fmt(median([m["server_mib"] for m in runs]), 1),
                fmt(median([m["workers_mib"] for m in runs]), 1),
                "-" if s is None else f"{s:.0f}%", ratio,
            ])
    widths = [max(len(r[i]) for r in out) for i in range(len(header))]
    lines = []
    for i, r in enumerate(out):
        lines.append("| " + " | ".join(c.ljust(widths[j]) if j < 2 else c.rjust(widths[j]) for j, c in enumerate(r)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) if j < 2 else "-" * (w + 1) + ":" for j, w in enumerate(widths)) + "|")
    return "\n".join(lines)


LEGEND = """\
Medians of {runs} run(s) each; spread = (max - min) / median of tasks/s over the runs: how noisy they were.
Key figure and "Switchyard ÷ this": tasks/s for (a), (c), (d), (e) (above 1: Switchyard is faster); p50 latency
for (b) (below 1: Switchyard answers sooner); server peak memory (VmHWM) for (f) (below 1: Switchyard holds the
queue in less). The Switchyard figure is --store memory's for (a)-(d), (f) and sqlite --sync full's for (e).
(d) raw libcrypto row: the same SHA-256 calls in {workers} processes with no scheduler; Switchyard ÷ this is its
fraction of raw hashing speed. CPU s = utime + stime of the server and its workers during the measurement,
from /proc (10 ms ticks); clients are not counted. server MiB = the server's VmHWM; workers MiB = the sum
of the workers' VmHWM. Each run starts every server afresh.
(a), (b), (d) beanstalkd reply: the client puts `REPLYTUBE TAG PAYLOAD`; a worker reserves it, puts
`TAG RESULT` into the client's own tube and deletes the job; the client reserves and deletes the reply.
Latency = put written to reply reserved. beanstalkd put-delete: puts only (in flight = puts not yet
answered), time until the workers have deleted every job; beanstalkd sends the producer no result.
(c) submit: background submits with the 2 workers stopped (SIGSTOP); latency = submit to acknowledgement
(ACCEPTED, JOB_CREATED, INSERTED). drain: SIGCONT, then time until the server's counters show all done.
(e), (f): background submits with the workers stopped.
[!N]: N of the runs saw worker restarts or failed tasks (the WARNING lines above say which; logs in
bench/peers/build/logs); their figures are in the medians."""


# ---------------------------------------------------------------- main


class Env:
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="directory of the C programs")
    parser.add_argument("--switchyard", required=True, help="the release switchyard executable")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated workload ids: a1,a16,b,c,d,e,f")
    parser.add_argument("--systems", default="", help="comma-separated: switchyard,gearmand,beanstalkd,raw")
    # gearmand's I/O threads (its default is 4). On 2 cores shared with the workers and the client,
    # 4 gave the same throughput for twice the CPU time and a higher p50 at one in flight than 1.
    parser.add_argument("--gearmand-threads", type=int, default=1)
    parser.add_argument("--results", help="write every run's figures here as JSON")
    args = parser.parse_args()

    env = Env()
    env.switchyard = os.path.abspath(args.switchyard)
    env.bin = lambda name: os.path.join(os.path.abspath(args.bin), name)
    env.gearmand_threads = args.gearmand_threads
    env.timeout = 120 if args.quick else 900
    env.tmp = tempfile.mkdtemp(prefix="peers-", dir=os.path.abspath(args.bin))
    # Every server's and worker's output, appended per program, kept after the run.
    env.logs = os.path.join(os.path.abspath(args.bin), "logs")
    shutil.rmtree(env.logs, ignore_errors=True)
    os.makedirs(env.logs)
    env.current = None
    runs = 1 if args.quick else args.runs

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    only = set(filter(None, args.only.split(",")))
    systems = set(filter(None, args.systems.split(",")))
    rows, failures = [], []
    started = time.monotonic()
    print(f"# {platform.node()}: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"{runs} run(s) each{' (quick)' if args.quick else ''}; gearmand --threads {env.gearmand_threads}", flush=True)
    try:
        for w in workloads(args.quick):
            if only and w["id"] not in only:
                continue
            reference = w.get("reference", "Switchyard memory")
            for name, options in w["systems"]:
                if systems and name not in systems:
                    continue
                collected = {}
                for run in range(runs):
                    try:
                        labels, figures = measure(env, w, name, options)
                    except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
                        failures.append(f"{w['id']} {name} {options}: {error}")
                        print(f"  FAILED {w['id']} {name} {options}: {error}", file=sys.stderr, flush=True)
                        break
                    for i, (label, fig) in enumerate(zip(labels, figures)):
                        suffix = ["", " submit", " drain"][i + 1 if len(labels) == 2 else 0]
                        collected.setdefault((w["id"] + suffix, label), []).append(fig)
                    print(f"  {w['id']} {labels[0]} run {run + 1}: " +
                          ", ".join(f"{f['throughput']:,.0f}/s" for f in figures), file=sys.stderr, flush=True)
                for (wid, label), figs in collected.items():
                    rows.append(dict(workload=wid, system=label, runs=figs, metric=w["metric"], reference=reference))
    finally:
        if env.current is not None:
            env.current.stop_all()
        shutil.rmtree(env.tmp, ignore_errors=True)

    # Keep each workload's rows together (submit rows before drain rows).
    order = {}
    for r in rows:
        order.setdefault(r["workload"], len(order))
    rows.sort(key=lambda r: order[r["workload"]])
    print()
    print(table(rows))
    print()
    print("Workloads: " + "; ".join(f"{w['id']} {w['title']}, {w['tasks']:,} tasks" for w in workloads(args.quick)
                                    if not only or w["id"] in only) + ".")
    print(LEGEND.format(runs=runs, workers=WORKERS))
    per_task = [(r["system"], median([m.get("bytes_per_task") for m in r["runs"]])) for r in rows if r["workload"] == "f"]
    if per_task:
        print("(f) server memory growth per queued task (VmHWM growth / tasks): " +
              ", ".join(f"{name} {value:,.0f} B" for name, value in per_task if value is not None))
        anon = [(r["system"], median([m.get("anon_mib") for m in r["runs"]])) for r in rows if r["workload"] == "f"]
        print("(f) server anonymous memory at the end (RssAnon: VmRSS less the mapped program and library files): " +
              ", ".join(f"{name} {value:,.1f} MiB" for name, value in anon if value is not None))
    print(f"\n# {time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.2f} at the end")
    if args.results:
        with open(args.results, "w") as f:
            json.dump(rows, f, indent=1)
    if failures:
        print("\nFAILED (a system did not run):\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
