#!/usr/bin/env python3
"""Snapshot create and restore times of minivmm per RAM size, and the time of a 1% diff.

The guest is guest/tests/snapshot-bench.bin: it prints "ready", then polls COM1; on "w" it
writes one qword into each of 1% of its RAM's pages (2,621 for 1 GiB) and prints "done", on
"q" it exits 0, on any other byte it prints "ok".

Part A (full snapshots), every round:
  1. For each --sizes entry: boot `minivmm IMAGE --memory SIZE --api-socket S` (timing the
     spawn to the guest's first stdout byte: "boot to first byte"), wait for "ready",
     PATCH /vm paused, and time PUT /snapshot/create {"path": DIR, "type": "full"}: the
     request's round trip over the Unix socket, i.e. the whole snapshot written, hashed,
     fsynced and renamed. Also minivmm's user and system CPU time during the request
     (/proc/PID/stat, 10 ms ticks). Then stop that VM. Then the floor: the same number of
     bytes hashed (hashlib SHA-256, i.e. OpenSSL) and written in 1 MiB chunks with os.write
     to a new file in --dir, then fsynced, timed in parts; the file is deleted.
  2. --restores cycles, each restoring every size once (order reversed every other cycle):
     `minivmm --restore DIR --log-level info` with a byte already on its stdin; restore to
     first instruction = from just before the process is spawned to the first byte on its
     stdout (the guest's "ok", a few instructions after its first one). Also minivmm's own
     "N ms of set-up" (its log: process start to the vCPUs let go, without loading the
     executable). The memory files are in the page cache (warm: as right after the snapshot).
  3. The same, cold: right before each restore, posix_fadvise(DONTNEED) evicts the memory
     files from the page cache, so the pages the guest touches come from the disk.
  4. Every restored VM is ended with "q" and must exit 0; the snapshots are deleted.

Part B, --diff-size (1G) every round: boot, "ready"; pause, time a full snapshot F1; resume,
send "w", wait for "done"; pause, time a diff snapshot D (parent F1), then a full snapshot F2
of the same moment; count D's pages; restore D (the chain F1 + D), check that the guest
answers; delete all three.

Prints every sample, then per figure the median and range (min-max), and the ratios the
targets of issue 10 ask for, each taken within a round (timings drift by +-15% between runs
here) and summarised over the rounds as median and range:
  - restore (warm) of the last --sizes entry / of the first: target <= 1.2;
  - diff / full snapshot of the same moment: target < 0.1.

--breakdown instead takes one full snapshot per size and round with strace attached to
minivmm and splits its time into write(2), fsync(2) and the rest.

Usage: Benchmarks/snapshot-times.py MINIVMM [--rounds 5] [--restores 5] [--sizes 128M,1G,4G]
           [--diff-size 1G] [--dir /tmp] [--skip-sizes] [--skip-diff] [--breakdown]
Needs free space in --dir for all --sizes together plus 1 GiB (checked before starting).
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from minivmm_api import UnixHTTPConnection, request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CHUNK = 1 << 20


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def cpu_seconds(pid):
    """(user, system) CPU seconds of the process so far."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def read_until(descriptor, marker, limit=10.0, data=b""):
    """Reads `descriptor` until `marker` has arrived; returns everything read."""
    deadline = time.monotonic() + limit
    while marker not in data:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {marker!r} from the guest within {limit} s (got {data!r})")
        chunk = os.read(descriptor, 4096)
        if not chunk:
            raise RuntimeError(f"the guest's stdout ended before {marker!r} (got {data!r})")
        data += chunk
    return data


class BootedVM:
    """`minivmm IMAGE --memory SIZE --api-socket S`, running the benchmark guest;
    `first_byte` is the spawn-to-first-stdout-byte time."""

    def __init__(self, minivmm, image, size, directory):
        self.socket_path = os.path.join(directory, "api.sock")
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.stdin_read, self.stdin_write = os.pipe()
        start = time.perf_counter()
        self.process = subprocess.Popen(
            [minivmm, image, "--memory", size, "--api-socket", self.socket_path, "--timeout", "600"],
            stdin=self.stdin_read, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = os.read(self.process.stdout.fileno(), 1)
        self.first_byte = time.perf_counter() - start
        os.close(self.stdin_read)
        read_until(self.process.stdout.fileno(), b"ready\n", data=first)
        for _ in range(500):
            if os.path.exists(self.socket_path):
                break
            time.sleep(0.01)
        self.connection = UnixHTTPConnection(self.socket_path, timeout=600)

    def set_state(self, state):
        status, _, _ = request(self.connection, "PATCH", "/vm", {"state": state})
        assert status in (200, 204), f"PATCH /vm {state}: {status}"

    def snapshot(self, path, kind):
        """Times PUT /snapshot/create; returns (wall, user CPU, system CPU) in seconds."""
        user0, system0 = cpu_seconds(self.process.pid)
        status, body, elapsed = request(self.connection, "PUT", "/snapshot/create", {"path": path, "type": kind})
        user1, system1 = cpu_seconds(self.process.pid)
        assert status == 204, f"PUT /snapshot/create {kind}: {status} {body}"
        return elapsed, user1 - user0, system1 - system0

    def send(self, byte):
        os.write(self.stdin_write, byte)

    def close(self):
        self.connection.close()
        self.process.terminate()
        _, errors = self.process.communicate()
        os.close(self.stdin_write)
        return errors


def memory_files(directory):
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory)) if name.startswith("memory-")]


def drop_from_page_cache(directory):
    """Evicts the snapshot's memory files from the page cache (they are clean after fsync)."""
    for path in memory_files(directory):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def restore(minivmm, directory):
    """Restores DIR with a byte waiting on stdin; returns (seconds from just before the
    spawn to the guest's first stdout byte, minivmm's logged set-up in seconds). Ends the
    guest with "q" and checks exit status 0."""
    stdin_read, stdin_write = os.pipe()
    os.write(stdin_write, b"p")
    start = time.perf_counter()
    process = subprocess.Popen(
        [minivmm, "--restore", directory, "--timeout", "600", "--log-level", "info"],
        stdin=stdin_read, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = os.read(process.stdout.fileno(), 1)
    elapsed = time.perf_counter() - start
    os.close(stdin_read)
    try:
        if first != b"o":
            raise RuntimeError(f"restored guest printed {first!r} first, not 'ok'")
        read_until(process.stdout.fileno(), b"k\n")
        os.write(stdin_write, b"q")
        _, errors = process.communicate(timeout=60)
        errors = errors.decode(errors="replace")
        if process.returncode != 0:
            raise RuntimeError(f"restored minivmm exited {process.returncode}: {errors}")
        match = re.search(r"after ([0-9.]+) ms of set-up", errors)
        if not match:
            raise RuntimeError(f"no set-up time in minivmm's log: {errors}")
    finally:
        os.close(stdin_write)
        if process.poll() is None:
            process.kill()
            process.wait()
    return elapsed, float(match.group(1)) / 1000


def floor(size, directory):
    """The same bytes as a SIZE snapshot's memory, done plainly: (SHA-256 alone, hashing and
    write(2) of each 1 MiB chunk, the fsync) in seconds. The chunk is the same 1 MiB of
    random bytes each time, as an idle guest's RAM reads as the same zero page."""
    chunk = os.urandom(CHUNK)
    count = size // CHUNK
    start = time.perf_counter()
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(chunk)
    digest.hexdigest()
    sha = time.perf_counter() - start
    path = os.path.join(directory, "floor.bin")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        start = time.perf_counter()
        digest = hashlib.sha256()
        for _ in range(count):
            digest.update(chunk)
            os.write(descriptor, chunk)
        written = time.perf_counter()
        os.fsync(descriptor)
        synced = time.perf_counter()
    finally:
        os.close(descriptor)
        os.unlink(path)
    return sha, written - start, synced - written


def diff_pages(directory):
    with open(os.path.join(directory, "snapshot.json")) as file:
        state = json.load(file)
    return sum(run["count"] for region in state["machine"]["memory"] for run in region.get("pages") or [])


def directory_bytes(directory):
    return sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))


def summary(samples, scale=1000.0, unit="ms", digits=1):
    values = [s * scale for s in samples]
    return (f"median {statistics.median(values):.{digits}f} {unit}, "
            f"range {min(values):.{digits}f}-{max(values):.{digits}f} (n={len(values)})")


def ratio_summary(values):
    return f"median {statistics.median(values):.3f}, range {min(values):.3f}-{max(values):.3f} (n={len(values)})"


def live_processes(pattern):
    """Processes whose command line matches `pattern`, zombies left out."""
    pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    live = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as file:
                if file.read().rsplit(")", 1)[1].split()[0] != "Z":
                    live.append(pid)
        except OSError:
            pass
    return live


def machine_line():
    load = os.getloadavg()
    busy = live_processes("swift-frontend|swift-build")
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, swift-frontend/swift-build processes: {len(busy)}")


def breakdown(minivmm, image, size, work):
    """One full snapshot of a SIZE guest with strace attached to every minivmm thread:
    returns (wall, seconds in write(2) of the memory files and their count, in their
    fsync(2), in the other fsync(2)s (state file, manifest, directories), user CPU,
    system CPU)."""
    snapshot = os.path.join(work, f"breakdown-{size}")
    trace = os.path.join(work, "strace.txt")
    vm = BootedVM(minivmm, image, size, work)
    tracer = None
    try:
        vm.set_state("paused")
        tracer = subprocess.Popen(
            ["strace", "-f", "-qq", "-T", "-y", "-e", "trace=write,fsync", "-o", trace, "-p", str(vm.process.pid)],
            stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # strace attaches to every thread
        wall, user, system = vm.snapshot(snapshot, "full")
    finally:
        if tracer is not None:
            tracer.send_signal(2)
            tracer.wait()
        vm.close()
    write_time = fsync_memory = fsync_other = 0.0
    writes = 0
    with open(trace) as file:
        for line in file:
            line = line.rstrip()
            if " = " not in line or not line.endswith(">"):
                continue
            seconds = float(line.rsplit("<", 1)[1][:-1])
            if " write(" in line and "memory-" in line:
                write_time += seconds
                writes += 1
            elif " fsync(" in line:
                if "memory-" in line:
                    fsync_memory += seconds
                else:
                    fsync_other += seconds
    os.unlink(trace)
    shutil.rmtree(snapshot)
    return wall, write_time, writes, fsync_memory, fsync_other, user, system


def run_breakdown(arguments, sizes, work):
    for round_index in range(arguments.rounds):
        for size in sizes:
            wall, write_time, writes, fsync_memory, fsync_other, user, system = breakdown(
                arguments.minivmm, arguments.image, size, work)
            rest = wall - write_time - fsync_memory - fsync_other
            print(f"round {round_index + 1} {size:>5} full under strace: {wall * 1000:.0f} ms = "
                  f"write(2) of memory {write_time * 1000:.0f} ms ({writes} calls) + fsync(2) of memory "
                  f"{fsync_memory * 1000:.0f} ms + other fsyncs {fsync_other * 1000:.0f} ms + outside those "
                  f"{rest * 1000:.0f} ms; CPU user {user * 1000:.0f} ms, system {system * 1000:.0f} ms", flush=True)


def run_sizes(arguments, sizes, work, results, round_index):
    snapshots = {}
    try:
        for size in sizes:
            snapshot = os.path.join(work, f"full-{size}")
            vm = BootedVM(arguments.minivmm, arguments.image, size, work)
            try:
                vm.set_state("paused")
                wall, user, system = vm.snapshot(snapshot, "full")
            finally:
                vm.close()
            snapshots[size] = snapshot
            sha, write, sync = floor(parse_size(size), work)
            results["boot"][size].append(vm.first_byte)
            results["create"][size].append(wall)
            results["user"][size].append(user)
            results["system"][size].append(system)
            results["floor"][size].append(write + sync)
            results["floor sha"][size].append(sha)
            results["floor write"][size].append(write)
            results["floor fsync"][size].append(sync)
            print(f"round {round_index + 1} {size:>5}: boot to first byte {vm.first_byte * 1000:.1f} ms; full snapshot "
                  f"{wall * 1000:.0f} ms (minivmm CPU user {user * 1000:.0f} ms, system {system * 1000:.0f} ms; "
                  f"{directory_bytes(snapshot) / (1 << 20):.0f} MiB); floor: SHA-256 {sha * 1000:.0f} ms, "
                  f"SHA-256 + write {write * 1000:.0f} ms, fsync {sync * 1000:.0f} ms", flush=True)
        round_medians = {}
        for kind in ("warm", "cold"):
            samples = {size: [] for size in sizes}
            setups = {size: [] for size in sizes}
            for cycle in range(arguments.restores):
                for size in (sizes if cycle % 2 == 0 else list(reversed(sizes))):
                    if kind == "cold":
                        drop_from_page_cache(snapshots[size])
                    elapsed, setup = restore(arguments.minivmm, snapshots[size])
                    samples[size].append(elapsed)
                    setups[size].append(setup)
            for size in sizes:
                results[kind][size].extend(samples[size])
                results[kind + " set-up"][size].extend(setups[size])
                round_medians[(kind, size)] = statistics.median(samples[size])
                round_medians[(kind + " set-up", size)] = statistics.median(setups[size])
                print(f"round {round_index + 1} {size:>5}: restore {kind}, first byte "
                      f"{' '.join(f'{x * 1000:.1f}' for x in samples[size])} ms; minivmm set-up "
                      f"{' '.join(f'{x * 1000:.1f}' for x in setups[size])} ms", flush=True)
        for kind in ("warm", "cold", "warm set-up", "cold set-up"):
            results["ratio " + kind].append(round_medians[(kind, sizes[-1])] / round_medians[(kind, sizes[0])])
    finally:
        for snapshot in snapshots.values():
            shutil.rmtree(snapshot, ignore_errors=True)


def run_diff(arguments, work, results, round_index):
    size = arguments.diff_size
    first = os.path.join(work, "diff-full-1")
    diff = os.path.join(work, "diff-1")
    second = os.path.join(work, "diff-full-2")
    try:
        vm = BootedVM(arguments.minivmm, arguments.image, size, work)
        try:
            vm.set_state("paused")
            f1, _, _ = vm.snapshot(first, "full")
            vm.set_state("running")
            vm.send(b"w")
            read_until(vm.process.stdout.fileno(), b"done\n")
            vm.set_state("paused")
            d, d_user, d_system = vm.snapshot(diff, "diff")
            f2, _, _ = vm.snapshot(second, "full")
        finally:
            vm.close()
        pages = diff_pages(diff)
        restored, _ = restore(arguments.minivmm, diff)
        results["full before"].append(f1)
        results["diff"].append(d)
        results["full after"].append(f2)
        results["diff restore"].append(restored)
        results["diff ratio"].append(d / f2)
        results["diff pages"].append(pages)
        results["diff bytes"].append(directory_bytes(diff))
        print(f"round {round_index + 1} {size:>5} diff: full before the writes {f1 * 1000:.0f} ms; diff {d * 1000:.1f} ms "
              f"(CPU user {d_user * 1000:.0f} ms, system {d_system * 1000:.0f} ms; {pages} pages, "
              f"{directory_bytes(diff) / (1 << 20):.1f} MiB); full of the same moment {f2 * 1000:.0f} ms; "
              f"diff / full {d / f2:.4f}; restore of full + diff, first byte {restored * 1000:.1f} ms", flush=True)
    finally:
        for path in (diff, first, second):
            shutil.rmtree(path, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("minivmm")
    parser.add_argument("--image", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "guest", "tests", "snapshot-bench.bin"))
    parser.add_argument("--sizes", default="128M,1G,4G")
    parser.add_argument("--diff-size", default="1G")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--restores", type=int, default=5, help="warm and cold restores of each size per round")
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--skip-sizes", action="store_true")
    parser.add_argument("--skip-diff", action="store_true")
    parser.add_argument("--breakdown", action="store_true",
                        help="only: one full snapshot per size and round under strace (write(2) and fsync(2) times)")
    arguments = parser.parse_args()
    sizes = arguments.sizes.split(",")

    needed = max(sum(parse_size(s) for s in sizes), 2 * parse_size(arguments.diff_size)) + (1 << 30)
    free = shutil.disk_usage(arguments.dir).free
    if free < needed:
        sys.exit(f"{arguments.dir}: {free >> 20} MiB free, need {needed >> 20} MiB")

    work = tempfile.mkdtemp(prefix="minivmm-snapshot-times-", dir=arguments.dir)
    print(f"start: {machine_line()}", flush=True)
    keys = ["boot", "create", "user", "system", "floor", "floor sha", "floor write", "floor fsync",
            "warm", "cold", "warm set-up", "cold set-up"]
    results = {key: {size: [] for size in sizes} for key in keys}
    for key in ["ratio warm", "ratio cold", "ratio warm set-up", "ratio cold set-up", "full before", "diff",
                "full after", "diff restore", "diff ratio", "diff pages", "diff bytes"]:
        results[key] = []
    try:
        if arguments.breakdown:
            run_breakdown(arguments, sizes, work)
            print(f"end: {machine_line()}")
            return
        for round_index in range(arguments.rounds):
            if not arguments.skip_sizes:
                run_sizes(arguments, sizes, work, results, round_index)
            if not arguments.skip_diff:
                run_diff(arguments, work, results, round_index)
            print(f"after round {round_index + 1}: {machine_line()}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    if not arguments.skip_sizes:
        for size in sizes:
            print(f"{size:>5} boot to first byte            {summary(results['boot'][size])}")
            print(f"{size:>5} full snapshot                 {summary(results['create'][size])}")
            print(f"{size:>5}   minivmm CPU user / system   {summary(results['user'][size])} / "
                  f"{summary(results['system'][size])}")
            print(f"{size:>5}   floor SHA-256 + write + fsync {summary(results['floor'][size])}; SHA-256 alone "
                  f"{summary(results['floor sha'][size])}; fsync {summary(results['floor fsync'][size])}")
            print(f"{size:>5} restore warm, first byte      {summary(results['warm'][size])}; minivmm set-up "
                  f"{summary(results['warm set-up'][size])}")
            print(f"{size:>5} restore cold, first byte      {summary(results['cold'][size])}; minivmm set-up "
                  f"{summary(results['cold set-up'][size])}")
        for kind in ("warm", "cold", "warm set-up", "cold set-up"):
            print(f"restore {kind}, {sizes[-1]} / {sizes[0]} (round medians): {ratio_summary(results['ratio ' + kind])}"
                  + ("   target <= 1.2" if kind == "warm" else ""))
    if not arguments.skip_diff:
        size = arguments.diff_size
        print(f"{size:>5} full snapshot before the writes {summary(results['full before'])}")
        print(f"{size:>5} diff after 1% written          {summary(results['diff'])}; "
              f"{min(results['diff pages'])}-{max(results['diff pages'])} pages, "
              f"{statistics.median(results['diff bytes']) / (1 << 20):.1f} MiB on disk")
        print(f"{size:>5} full snapshot, same moment     {summary(results['full after'])}")
        print(f"{size:>5} restore full + diff            {summary(results['diff restore'])}")
        print(f"diff / full of the same moment (per round): {ratio_summary(results['diff ratio'])}   target < 0.1")


if __name__ == "__main__":
    sys.exit(main())
