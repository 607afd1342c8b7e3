import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readOpenFilesLimit } from '../../src/common/net/descriptor-budget.ts';

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
  return statusBytes(pid, 'VmHWM');
}

/** Resident set size in bytes now: VmRSS of /proc/<pid>/status (what the soak and idle-connection figures follow). */
export function rssBytes(pid: number): number {
  return statusBytes(pid, 'VmRSS');
}

/** A `kB` field of /proc/<pid>/status, in bytes (0 when absent). */
function statusBytes(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Sockets the process holds open (its /proc/<pid>/fd links to `socket:[…]`): listeners and connections. */
export function socketCount(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // Closed between the listing and the readlink.
    }
  }
  return n;
}

/** The soft open-files limit (ulimit -n) of a process, from /proc/<pid>/limits; `self` for this one. */
export function openFilesLimit(pid: number | 'self'): number {
  return readOpenFilesLimit(`/proc/${pid}/limits`) ?? Infinity;
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
