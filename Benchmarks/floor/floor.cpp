// The floor the allocator benchmarks are compared with (issue 11): the same phases as
// Benchmarks/Benchmarks/AllocatorBenchmarks/Workloads.swift, done by the bare data
// structures instead of VMAllocator.
//
// - Address phases: std::map<uint64_t, uint64_t> (start -> end) insert and erase, with no
//   search for a fitting block, no alignment and no free-space bookkeeping. W1 inserts N
//   keys 0x1000 apart (ascending for firstMatch, descending from 2^48 for lastMatch), W2
//   erases every second one starting with the first, W3 inserts N/2 keys 0x2000 apart
//   beyond the W1 block (above it for firstMatch, below it for lastMatch).
// - ID phases: a counter plus a free list (a LIFO vector of released IDs). For I1
//   (allocate with nothing freed) the allocator is inlined into the loop, as
//   VMAllocator's inlinable fast path is; "I1 allocateID called" is the same phase
//   through an out-of-line call. I2 (free ascending) and I3 (allocate the released IDs)
//   call out-of-line functions, as clients call VMAllocator's freeID and slow path.
//
// Every result is checked, as the Swift workloads check theirs. Times are the thread's
// CPU time, as in the Swift benchmarks, with the same numbers of samples and one warm-up.
// Output, one line per phase and N: "<phase>\t<N>\t<median ps per op>\t<fastest ps per op>".
//
// Build and run (Benchmarks/run.sh does both):
//   g++ -O2 -std=c++17 -o .build/floor floor/floor.cpp && .build/floor
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <utility>
#include <vector>

namespace {

constexpr uint64_t spaceSize = uint64_t(1) << 48;
constexpr uint64_t small = 0x1000;
constexpr uint64_t large = 0x2000;

[[noreturn]] void fail(const char* what, uint64_t value) {
    std::fprintf(stderr, "floor: %s failed with %llu\n", what, static_cast<unsigned long long>(value));
    std::exit(1);
}

// CPU time of this thread, as the Swift benchmarks measure it (CHeapUsage.c).
uint64_t threadCpuNanoseconds() {
    timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec);
}

int samplesFor(size_t n) {
    if (n < 10000) return 40;
    if (n < 100000) return 15;
    if (n < 1000000) return 10;
    return 5;
}

// Runs `setup` (not timed) and `body` (timed) once to warm up, then `samples` times, and
// prints the median and fastest time per operation in picoseconds.
template <class Setup, class Body>
void measure(const char* phase, size_t n, size_t operations, Setup setup, Body body) {
    std::vector<double> perOp;
    int samples = samplesFor(n);
    for (int sample = 0; sample <= samples; ++sample) {
        auto state = setup();
        uint64_t start = threadCpuNanoseconds();
        body(state);
        uint64_t stop = threadCpuNanoseconds();
        double ps = double(stop - start) * 1000.0 / double(operations);
        if (sample > 0) perOp.push_back(ps);
        // `state` is destroyed here, outside the timed section.
    }
    std::sort(perOp.begin(), perOp.end());
    std::printf("%s\t%zu\t%.0f\t%.0f\n", phase, n, perOp[(perOp.size() - 1) / 2], perOp.front());
    std::fflush(stdout);
}

using Map = std::map<uint64_t, uint64_t>;

uint64_t w1Start(size_t index, bool last) {
    return last ? spaceSize - uint64_t(index + 1) * small : uint64_t(index) * small;
}

void w1(Map& map, size_t n, bool last) {
    for (size_t index = 0; index < n; ++index) {
        uint64_t start = w1Start(index, last);
        if (!map.emplace(start, start + small - 1).second) fail("W1 insert", start);
    }
}

void w2(Map& map, size_t n, bool last) {
    for (size_t index = 0; index < n; index += 2) {
        uint64_t start = w1Start(index, last);
        if (map.erase(start) != 1) fail("W2 erase", start);
    }
}

void w3(Map& map, size_t n, bool last) {
    uint64_t extent = uint64_t(n) * small;
    for (size_t index = 0; index < n / 2; ++index) {
        uint64_t start = last ? spaceSize - extent - uint64_t(index + 1) * large
                              : extent + uint64_t(index) * large;
        if (!map.emplace(start, start + large - 1).second) fail("W3 insert", start);
    }
}

// A counter plus a free list: the least an ID allocator can do.
struct IdFloor {
    uint32_t next = 0;
    uint32_t end = UINT32_MAX;
    bool exhausted = false;
    std::vector<uint32_t> freed;

    bool allocate(uint32_t& id) {
        if (!freed.empty()) {
            id = freed.back();
            freed.pop_back();
            return true;
        }
        if (exhausted) return false;
        id = next;
        if (next == end) exhausted = true; else ++next;
        return true;
    }

    bool release(uint32_t id) {
        if (id >= next && !exhausted) return false;  // never handed out
        freed.push_back(id);
        return true;
    }
};

__attribute__((noinline)) bool allocateCalled(IdFloor& floor, uint32_t& id) { return floor.allocate(id); }
__attribute__((noinline)) bool releaseCalled(IdFloor& floor, uint32_t id) { return floor.release(id); }

}  // namespace

int main() {
    const size_t sizes[] = {1000, 10000, 100000, 1000000};
    for (bool last : {false, true}) {
        const char* policy = last ? "lastMatch" : "firstMatch";
        char name[64];
        for (size_t n : sizes) {
            std::snprintf(name, sizeof name, "W1 %s", policy);
            measure(name, n, n, [] { return Map(); }, [&](Map& map) { w1(map, n, last); });
            std::snprintf(name, sizeof name, "W2 %s", policy);
            measure(name, n, (n + 1) / 2,
                [&] { Map map; w1(map, n, last); return map; },
                [&](Map& map) { w2(map, n, last); });
            std::snprintf(name, sizeof name, "W3 %s", policy);
            measure(name, n, n / 2,
                [&] { Map map; w1(map, n, last); w2(map, n, last); return map; },
                [&](Map& map) { w3(map, n, last); });
        }
    }
    for (size_t n : sizes) {
        measure("I1 allocateID", n, n, [] { return IdFloor(); }, [&](IdFloor& ids) {
            for (uint32_t expected = 0; expected < n; ++expected) {
                uint32_t id = 0;
                if (!ids.allocate(id) || id != expected) fail("I1 allocateID", id);
            }
        });
        measure("I1 allocateID called", n, n, [] { return IdFloor(); }, [&](IdFloor& ids) {
            for (uint32_t expected = 0; expected < n; ++expected) {
                uint32_t id = 0;
                if (!allocateCalled(ids, id) || id != expected) fail("I1 allocateID called", id);
            }
        });
        auto allocated = [&] {
            IdFloor ids;
            for (uint32_t index = 0; index < n; ++index) {
                uint32_t id = 0;
                allocateCalled(ids, id);
            }
            ids.freed.reserve(n);
            return ids;
        };
        measure("I2 freeID", n, n, allocated, [&](IdFloor& ids) {
            for (uint32_t id = 0; id < n; ++id) {
                if (!releaseCalled(ids, id)) fail("I2 freeID", id);
            }
        });
        measure("I3 reallocate", n, n,
            [&] {
                IdFloor ids = allocated();
                for (uint32_t id = 0; id < n; ++id) releaseCalled(ids, id);
                return ids;
            },
            [&](IdFloor& ids) {
                for (uint32_t index = 0; index < n; ++index) {
                    uint32_t id = 0;
                    if (!allocateCalled(ids, id) || id >= n) fail("I3 reallocate", id);
                }
            });
    }
    return 0;
}
