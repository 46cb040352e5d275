// A getrusage(2) record for the statistics tests (client tables, the stats registry, Influx):
// the fields a test cares about, every other counter 0.
import type { Rusage } from "../../src/commands/types.js";

type Counters = Omit<Rusage, "utime" | "stime">;

export function rusage(f: Pick<Rusage, "utime" | "stime"> & Partial<Counters>): Rusage {
  const zero: Counters = {
    maxrss: 0n,
    ixrss: 0n,
    idrss: 0n,
    isrss: 0n,
    minflt: 0n,
    majflt: 0n,
    nswap: 0n,
    inblock: 0n,
    outblock: 0n,
    msgsnd: 0n,
    msgrcv: 0n,
    nsignals: 0n,
    nvcsw: 0n,
    nivcsw: 0n,
  };
  return { ...zero, ...f };
}
