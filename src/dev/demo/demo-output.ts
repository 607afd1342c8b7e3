import type { CommandIo } from '../../cli/command.ts';
import type { DemoResult } from './demo-mesh.ts';

/** ANSI colour only on a terminal: piped output (tests, `| tee`) stays plain text. */
export function paint(io: CommandIo, code: number, text: string): string {
  return (io.stdout as NodeJS.WriteStream).isTTY ? `\x1b[${code}m${text}\x1b[0m` : text;
}

/** One printed demo call: time, who called whom, what, the status, the decision and why. */
export function resultLine(io: CommandIo, r: DemoResult): string {
  const time = new Date().toISOString().slice(11, 19);
  const verdict = r.decision === 'allow' ? paint(io, 32, 'ALLOW') : r.decision === 'deny' ? paint(io, 31, 'DENY ') : paint(io, 33, 'ERROR');
  return `${time}  ${r.from.padEnd(8)} -> ${r.to.padEnd(8)}  ${`${r.method} ${r.path}`.padEnd(18)}  ${String(r.status).padEnd(3)}  ${verdict}  ${r.detail}`;
}

/** A policy event of a sidecar's log, as the demo reports it. */
export type PolicyEvent = { event: 'policy_reloaded' } | { event: 'policy_rejected'; result: string; errors: string[] };

/**
 * The policy event a sidecar's JSON log line carries (policy_reloaded, or policy_rejected with
 * its result — invalid, unreadable, deleted — and its errors, each already "FILE:LINE:COL:
 * error CODE at PATH: message" as `meshlet policy check` prints it), or undefined.
 */
export function policyEventOf(raw: string): PolicyEvent | undefined {
  if (raw.includes('"event":"policy_reloaded"')) return { event: 'policy_reloaded' };
  if (!raw.includes('"event":"policy_rejected"')) return undefined;
  try {
    const line = JSON.parse(raw) as { result?: unknown; errors?: unknown };
    const errors = Array.isArray(line.errors) ? line.errors.map(String) : [];
    return { event: 'policy_rejected', result: typeof line.result === 'string' ? line.result : 'invalid', errors };
  } catch {
    return { event: 'policy_rejected', result: 'invalid', errors: [] };
  }
}

/**
 * The notice printed when the sidecars reload the live-edited policy, or do not: a refused edit
 * lists every error with the FILE:LINE:COL the parser gives; a file that is gone for a moment (an
 * editor saving by rename) or cannot be read says so.
 */
export function policyEventLine(io: CommandIo, event: PolicyEvent): string {
  if (event.event === 'policy_reloaded') return paint(io, 36, '--- policy reloaded: the next round uses it\n');
  if (event.result === 'deleted') return paint(io, 33, '--- policy file missing (removed, or replaced by an editor): the last good policy stays until it is back\n');
  const what = event.result === 'unreadable' ? 'policy file UNREADABLE' : 'policy edit REFUSED';
  if (event.errors.length === 0) return paint(io, 33, `--- ${what}, the last good policy stays\n`);
  return paint(io, 33, `--- ${what}, the last good policy stays:\n${event.errors.map((e) => `      ${e}`).join('\n')}\n`);
}
