// What a process costs, read from /proc: the benchmarks' view of a server they started.
#pragma once

namespace dgram::bench {

// CPU time of process `pid` so far (all its threads), in seconds: the scheduler's nanoseconds where the kernel
// keeps them, else user plus system time in clock ticks.
double cpu_seconds(int pid);
// Its resident memory (VmRSS), in KiB; 0 when it cannot be read.
long resident_kib(int pid);

}  // namespace dgram::bench
