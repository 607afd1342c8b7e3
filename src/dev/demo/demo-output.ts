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

/** The notice printed when the sidecars reload the live-edited policy, or refuse an edit. */
export function policyEventLine(io: CommandIo, event: { event: 'policy_reloaded' } | { event: 'policy_rejected'; errors: readonly string[] }): string {
  if (event.event === 'policy_reloaded') return paint(io, 36, '--- policy reloaded: the next round uses it\n');
  return paint(io, 33, `--- policy edit REFUSED, the last good policy stays:\n${event.errors.map((e) => `      ${e}`).join('\n')}\n`);
}
