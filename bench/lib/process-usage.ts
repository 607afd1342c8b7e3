import { readFileSync } from 'node:fs';

// What one proxy process costs: CPU seconds (utime + stime, read from /proc/<pid>/stat before
// and after a run — the load generator shares the two cores, so wall-clock throughput alone
// would hide where the cycles went) and peak resident memory.

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces: split after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Peak resident set size in bytes: VmHWM of /proc/<pid>/status (the high-water mark, not the current RSS). */
export function peakRssBytes(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** A proxy process a target's traffic crosses, by role ("outbound", "inbound"). */
export interface ProxyProcess {
  role: string;
  pid: number;
}

/** CPU seconds of each process, keyed by role: a snapshot to subtract after the run. */
export function cpuSnapshot(procs: readonly ProxyProcess[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of procs) out[p.role] = cpuSeconds(p.pid);
  return out;
}

/** CPU seconds per 1,000 requests of each process between two snapshots. */
export function cpuPer1k(before: Record<string, number>, after: Record<string, number>, requests: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const role of Object.keys(before)) out[role] = ((after[role]! - before[role]!) / Math.max(1, requests)) * 1000;
  return out;
}
