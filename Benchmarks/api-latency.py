#!/usr/bin/env python3
"""Latency of minivmm's hot-plug requests over the control API.

Starts `minivmm IMAGE --api-socket SOCKET` and, over one kept-alive HTTP/1.1 connection on
the Unix socket (Python's http.client does the HTTP), measures each request's round trip:

  - PUT /devices/{id} {"kind": "timer"} and a surprise DELETE of it, CYCLES times;
  - PUT /memory/{id} {"size": "256M"} and its DELETE, MEMORY_CYCLES times.

The guest is guest/tests/spin.bin by default: it never enables hot-plug notifications, so
every DELETE is a surprise removal (204), and it keeps its vCPU busy, so each change really
pauses and resumes it. Prints p50, p99 and max per request kind, in milliseconds, and checks
that GET /resources at the end equals the one before the first request.

Usage: Benchmarks/api-latency.py MINIVMM [--cycles 1000] [--memory-cycles 100] [--image IMAGE]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from minivmm_api import UnixHTTPConnection, request


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(name, samples):
    ms = [s * 1000 for s in samples]
    print(f"{name:<28} n={len(ms):<5} p50 {percentile(ms, 0.50):7.3f} ms   p99 {percentile(ms, 0.99):7.3f} ms"
          f"   max {max(ms):7.3f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("minivmm")
    parser.add_argument("--image", default=os.path.join(os.path.dirname(__file__), "..", "guest", "tests", "spin.bin"))
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--memory-cycles", type=int, default=100)
    arguments = parser.parse_args()

    directory = tempfile.mkdtemp(prefix="minivmm-api-latency-")
    path = os.path.join(directory, "api.sock")
    process = subprocess.Popen(
        [arguments.minivmm, arguments.image, "--api-socket", path, "--timeout", "600"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finished = False
    try:
        for _ in range(500):
            if os.path.exists(path):
                break
            time.sleep(0.01)
        connection = UnixHTTPConnection(path)
        status, initial, _ = request(connection, "GET", "/resources")
        assert status == 200, status

        timings = {"PUT /devices (timer)": [], "DELETE /devices (surprise)": [],
                   "PUT /memory (256M)": [], "DELETE /memory (surprise)": []}
        for cycle in range(arguments.cycles):
            status, _, elapsed = request(connection, "PUT", f"/devices/t{cycle}", {"kind": "timer"})
            assert status == 200, status
            timings["PUT /devices (timer)"].append(elapsed)
            status, _, elapsed = request(connection, "DELETE", f"/devices/t{cycle}")
            assert status == 204, status
            timings["DELETE /devices (surprise)"].append(elapsed)
        for cycle in range(arguments.memory_cycles):
            status, region, elapsed = request(connection, "PUT", f"/memory/m{cycle}", {"size": "256M"})
            assert status == 200 and region["size"] == 256 << 20, (status, region)
            timings["PUT /memory (256M)"].append(elapsed)
            status, _, elapsed = request(connection, "DELETE", f"/memory/m{cycle}")
            assert status == 204, status
            timings["DELETE /memory (surprise)"].append(elapsed)

        status, final, _ = request(connection, "GET", "/resources")
        assert status == 200 and final == initial, "the resources did not come back"
        for name, samples in timings.items():
            report(name, samples)
        print("GET /resources after all cycles equals the initial one")
        finished = True
    finally:
        process.terminate()
        _, errors = process.communicate()
        if not finished:
            sys.stderr.write(errors.decode(errors="replace"))
        try:
            os.rmdir(directory)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
