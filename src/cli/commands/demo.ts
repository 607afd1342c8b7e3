import { Writable } from 'node:stream';
import type { Command, CommandIo } from '../command.ts';
import { parseFlags } from '../command.ts';
import { UsageError } from '../../common/errors/meshlet-error.ts';
import { parseDuration } from '../../common/config/duration.ts';
import { DemoMesh, type DemoResult } from '../../dev/demo/demo-mesh.ts';
import { policyEventLine, policyEventOf, resultLine } from '../../dev/demo/demo-output.ts';

const help = `Usage: meshlet demo [--pods] [--rounds N] [--interval 2s]

Runs a whole mesh on this machine, no cluster and no root needed: a CA, three services
(frontend, orders, payments) each with its own sidecar on loopback (explicit mode), one
policy file, and a little traffic. Every call is printed with the decision and why.
Edit the policy file while it runs: the sidecars reload it live (an invalid edit is
refused, each error printed at its FILE:LINE:COL as \`meshlet policy check\` prints it, and
the last good policy stays). Ctrl-C stops everything cleanly.

With --pods (root only: it creates network namespaces, veths and iptables rules) the same
three services run as network-namespace pods, each set up from what \`meshlet inject\` makes
of it: the init container's iptables rules, a real \`meshlet sidecar\` process (uid 2020)
and the app (uid 1000). The apps call each other by cluster name
(http://orders.shop.svc.cluster.local:8080/...) with no proxy settings: interception is
transparent. Ctrl-C deletes the pods, their namespaces and every process.

Flags:
  --pods           run the services in network-namespace pods (needs root and iptables)
  --rounds N       stop after N rounds of calls (default: run until Ctrl-C)
  --interval D     time between rounds (default 2s)`;

/** What the round loop needs of either demo: the loopback mesh or the pods. */
interface RunningDemo {
  round(): Promise<DemoResult[]>;
  /** Lines to print before the next round (policy reloads and refused edits). */
  news(): string[];
  stop(): Promise<void>;
}

async function startLoopbackDemo(io: CommandIo): Promise<RunningDemo> {
  // The sidecars' JSON logs are not shown; policy reloads (of one sidecar, to print each once)
  // are, once the mesh is up (the first load at start is not news).
  let started = false;
  const news: string[] = [];
  const logStream = new Writable({
    write(chunk, _enc, cb) {
      for (const raw of String(chunk).split('\n')) {
        if (!started || !raw.includes('"service":"orders"')) continue;
        const event = policyEventOf(raw);
        if (event) news.push(policyEventLine(io, event));
      }
      cb();
    },
  });
  io.stdout.write('meshlet demo: starting a CA and three services with their sidecars…\n');
  const mesh = new DemoMesh();
  try {
    await mesh.start({ logStream });
  } catch (err) {
    await mesh.stop();
    throw err;
  }
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
  return { round: () => mesh.round(), news: () => news.splice(0), stop: () => mesh.stop() };
}

async function startPodsDemo(io: CommandIo, signal: AbortSignal): Promise<RunningDemo> {
  // Loaded only here: the plain demo must not need the netns code (or root) at all.
  const { PodsDemo } = await import('../../dev/demo/pods-demo.ts');
  io.stdout.write('meshlet demo --pods: creating a node, three pods with their sidecars, and Services…\n');
  const demo = await PodsDemo.start({ signal });
  const s = (n: string) => demo.services.get(n)!;
  const netns = (n: string) => s(n).pod.netns;
  io.stdout.write(
    [
      '',
      `The mesh in network-namespace pods (run ${demo.cluster.runId}; trust domain demo.local; every hop is mTLS):`,
      ...[...demo.services.values()].map((x) => `  ${x.name.padEnd(9)} pod ${x.pod.netns.padEnd(22)} ${x.pod.ip.padEnd(13)} ${x.spiffeId.padEnd(45)} admin ${x.adminUrl}`),
      '',
      'Services (VIPs DNATed in the node, as kube-proxy does):',
      ...demo.cluster.services.map((x) => `  ${x.fqdn}:8080 -> ${x.vip}`),
      '',
      'Each app calls the others by name with no proxy settings; its pod\'s iptables send the call to its sidecar.',
      '',
      `Policy (a ConfigMap-style volume every sidecar mounts; edit it while this runs, it reloads live):\n  ${demo.policyFile}`,
      '',
      'Ask why a call is denied, with the same compiled policy the sidecars run:',
      `  npx meshlet policy explain ${demo.policyFile} --from ${s('frontend').spiffeId} --port 8080 --method DELETE --path /orders/7 --server-account orders --namespace shop`,
      '',
      'Look inside:',
      `  ip netns exec ${netns('orders')} npx meshlet connections --admin http://127.0.0.1:${new URL(s('orders').adminUrl).port}   # /connections answers loopback only, as kubectl exec`,
      `  curl -s ${s('orders').adminUrl}/metrics | grep meshlet_authz`,
      `  ip netns exec ${netns('orders')} iptables-save -t nat     # the injected interception rules`,
      `  ip netns exec ${netns('frontend')} ss -tnp                 # the app's connection ends at its sidecar`,
      '',
      'Calls (Ctrl-C to stop and delete the pods):',
      '',
    ].join('\n') + '\n',
  );
  return {
    round: () => demo.round(),
    news: () => demo.policyEvents().map((e) => policyEventLine(io, e)),
    stop: () => demo.stop(),
  };
}

export const commands: Command[] = [
  {
    name: 'demo',
    summary: 'run a whole demo mesh on this machine',
    help,
    async run(argv, io) {
      const { values } = parseFlags(argv, { rounds: { type: 'string' }, interval: { type: 'string' }, pods: { type: 'boolean' } });
      const rounds = values.rounds === undefined ? Infinity : Number(values.rounds);
      if (!Number.isInteger(rounds) && rounds !== Infinity) throw new UsageError('--rounds must be a whole number');
      if (rounds < 1) throw new UsageError('--rounds must be at least 1');
      let intervalMs: number;
      try {
        intervalMs = parseDuration(values.interval ?? '2s', '--interval');
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      if (values.pods) {
        if (process.getuid?.() !== 0) {
          io.stderr.write(
            'meshlet demo --pods needs root: it creates network namespaces, veth pairs and iptables rules (CAP_NET_ADMIN).\n' +
              'Run it as root (sudo), or run plain `meshlet demo`, which runs the same mesh on loopback and needs no root.\n',
          );
          return 2;
        }
        const { e2eAvailability } = await import('../../dev/netns/availability.ts');
        const availability = e2eAvailability();
        if (!availability.ok) {
          io.stderr.write(`meshlet demo --pods cannot run here: ${availability.reason}.\nPlain \`meshlet demo\` needs none of this.\n`);
          return 1;
        }
      }

      let stopping = false;
      let wake: (() => void) | undefined;
      const startup = new AbortController();
      const onSignal = () => {
        stopping = true;
        startup.abort();
        wake?.();
      };
      // Installed before anything starts, and kept through the teardown: a Ctrl-C during
      // start-up, or a second one while stopping, must not kill the process with pods left.
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let demo: RunningDemo | undefined;
      try {
        try {
          demo = values.pods ? await startPodsDemo(io, startup.signal) : await startLoopbackDemo(io);
        } catch (err) {
          // Stopped half-way through start-up: what was made is already torn down.
          if (!stopping) throw err;
          io.stdout.write('meshlet demo: stopped during start-up.\n');
          return 0;
        }
        for (let round = 0; round < rounds && !stopping; round++) {
          for (const line of demo.news()) io.stdout.write(line);
          let results: DemoResult[];
          try {
            results = await demo.round();
          } catch (err) {
            // A call cut short by the stop (a signal that also reached a pod's process) is
            // the stop, not a failure.
            if (stopping) break;
            throw err;
          }
          for (const r of results) io.stdout.write(resultLine(io, r) + '\n');
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
        if (demo) {
          io.stdout.write(values.pods ? 'meshlet demo: stopping the sidecars and apps, deleting the pods…\n' : 'meshlet demo: stopping the sidecars and apps…\n');
          await demo.stop();
          io.stdout.write('meshlet demo: stopped cleanly.\n');
        }
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      return 0;
    },
  },
];
