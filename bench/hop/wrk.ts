import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface WrkResult {
  p50us: number;
  p75us: number;
  p90us: number;
  p99us: number;
  requestsPerSec: number;
  requests: number;
  errors: number;
}

/** wrk's latency figures have microsecond resolution (unlike autocannon's whole milliseconds). */
export async function runWrk(url: string, opts: { connections: number; seconds: number; host?: string }): Promise<WrkResult> {
  const args = ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency'];
  if (opts.host) args.push('-H', `Host: ${opts.host}`);
  args.push(url);
  const { stdout } = await run('wrk', args, { timeout: (opts.seconds + 30) * 1000 });
  return parseWrk(stdout);
}

function toMicros(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!m) throw new Error(`cannot parse wrk latency ${JSON.stringify(text)}`);
  const v = Number(m[1]);
  return m[2] === 'us' ? v : m[2] === 'ms' ? v * 1000 : v * 1_000_000;
}

export function parseWrk(out: string): WrkResult {
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    if (!m) throw new Error(`wrk output has no ${p}% line:\n${out}`);
    return toMicros(m[1]!);
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const total = /(\d+) requests in/.exec(out);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  return { p50us: pct('50'), p75us: pct('75'), p90us: pct('90'), p99us: pct('99'), requestsPerSec: Number(rps?.[1] ?? 0), requests: Number(total?.[1] ?? 0), errors };
}
