import { Writable } from 'node:stream';
import type { Command, CommandIo } from '../command.ts';
import { parseFlags } from '../command.ts';
import { UsageError } from '../../errors/meshlet-error.ts';
import { parseDuration } from '../../config/duration.ts';
import { DemoMesh, type DemoResult } from '../../demo/demo-mesh.ts';

const help = `Usage: meshlet demo [--rounds N] [--interval 2s]

Runs a whole mesh on this machine, no cluster and no root needed: a CA, three services
(frontend, orders, payments) each with its own sidecar on loopback (explicit mode), one
policy file, and a little traffic. Every call is printed with the decision and why.
Edit the policy file while it runs: the sidecars reload it live (an invalid edit is
refused and the last good policy stays). Ctrl-C stops everything cleanly.

Flags:
  --rounds N       stop after N rounds of calls (default: run until Ctrl-C)
  --interval D     time between rounds (default 2s)`;

function paint(io: CommandIo, code: number, text: string): string {
  return (io.stdout as NodeJS.WriteStream).isTTY ? `\x1b[${code}m${text}\x1b[0m` : text;
}

function line(io: CommandIo, r: DemoResult): string {
  const time = new Date().toISOString().slice(11, 19);
  const verdict = r.decision === 'allow' ? paint(io, 32, 'ALLOW') : r.decision === 'deny' ? paint(io, 31, 'DENY ') : paint(io, 33, 'ERROR');
  return `${time}  ${r.from.padEnd(8)} -> ${r.to.padEnd(8)}  ${`${r.method} ${r.path}`.padEnd(18)}  ${String(r.status).padEnd(3)}  ${verdict}  ${r.detail}`;
}

export const commands: Command[] = [
  {
    name: 'demo',
    summary: 'run a whole demo mesh on this machine',
    help,
    async run(argv, io) {
      const { values } = parseFlags(argv, { rounds: { type: 'string' }, interval: { type: 'string' } });
      const rounds = values.rounds === undefined ? Infinity : Number(values.rounds);
      if (!Number.isInteger(rounds) && rounds !== Infinity) throw new UsageError('--rounds must be a whole number');
      if (rounds < 1) throw new UsageError('--rounds must be at least 1');
      let intervalMs: number;
      try {
        intervalMs = parseDuration(values.interval ?? '2s', '--interval');
      } catch (err) {
        throw new UsageError((err as Error).message);
      }

      // The sidecars' JSON logs are not shown; policy reloads (of one sidecar, to print each once)
      // are, once the mesh is up (the first load at start is not news).
      let started = false;
      const logStream = new Writable({
        write(chunk, _enc, cb) {
          for (const raw of String(chunk).split('\n')) {
            if (!started || !raw.includes('"service":"orders"')) continue;
            if (raw.includes('"event":"policy_reloaded"')) io.stdout.write(paint(io, 36, '--- policy reloaded: the next round uses it\n'));
            else if (raw.includes('"event":"policy_rejected"')) {
              const errors = (JSON.parse(raw) as { errors?: string[] }).errors ?? [];
              io.stdout.write(paint(io, 33, `--- policy edit REFUSED, the last good policy stays:\n${errors.map((e) => `      ${e}`).join('\n')}\n`));
            }
          }
          cb();
        },
      });

      const mesh = new DemoMesh();
      let stopping = false;
      let wake: (() => void) | undefined;
      const onSignal = () => {
        stopping = true;
        wake?.();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        io.stdout.write('meshlet demo: starting a CA and three services with their sidecars…\n');
        await mesh.start({ logStream });
        started = true;
        const s = (n: string) => mesh.services.get(n)!;
        io.stdout.write(
          [
            '',
            'The mesh (trust domain demo.local; every hop is mTLS with SPIFFE identities):',
            ...[...mesh.services.values()].map((x) => `  ${x.name.padEnd(9)} ${x.spiffeId.padEnd(45)} admin http://127.0.0.1:${x.ports.admin}  (/metrics /connections /ready)`),
            '',
            `Policy file (edit it while this runs; it reloads live):\n  ${mesh.policyFile}`,
            '',
            'Ask why a call is denied, with the same compiled policy the sidecars run:',
            `  npx meshlet policy explain ${mesh.policyFile} --from ${s('frontend').spiffeId} --port 8080 --method DELETE --path /orders/7 --server-account orders --namespace shop`,
            '',
            'Live connections of a sidecar:',
            `  npx meshlet connections --admin http://127.0.0.1:${s('orders').ports.admin}`,
            '',
            'Calls (Ctrl-C to stop):',
            '',
          ].join('\n') + '\n',
        );
        for (let round = 0; round < rounds && !stopping; round++) {
          for (const r of await mesh.round()) io.stdout.write(line(io, r) + '\n');
          io.stdout.write('\n');
          if (round + 1 < rounds && !stopping) {
            await new Promise<void>((resolve) => {
              const t = setTimeout(resolve, intervalMs);
              wake = () => {
                clearTimeout(t);
                resolve();
              };
            });
          }
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        io.stdout.write('meshlet demo: stopping the sidecars and apps…\n');
        await mesh.stop();
        io.stdout.write('meshlet demo: stopped cleanly.\n');
      }
      return 0;
    },
  },
];
