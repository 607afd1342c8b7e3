import { BenchError } from '../lib/bench-error.ts';
import { compareTargets, summarizeRuns, type RunSample, type ScenarioResult } from '../lib/figures.ts';
import { interleave } from '../lib/interleave.ts';
import type { ProcessPeak } from '../lib/issue-targets.ts';
import { passthroughUnavailable, startPassthroughPods, TLS_ECHO_SNI, type PassthroughTarget } from '../lib/passthrough-pods.ts';
import { cpuPer1k, cpuSnapshot, peakRssBytes, rssBytes } from '../lib/process-usage.ts';
import type { RunOptions } from '../lib/run-options.ts';
import type { SidecarRuntime } from '../lib/sidecar-runtime.ts';

/**
 * The outbound TLS-passthrough hop (issue 14): an app in a meshed pod speaks its own TLS to a
 * server outside the mesh; iptables REDIRECTs the connection to the sidecar, which reads the
 * original destination (SO_ORIGINAL_DST), sees a ClientHello and splices the bytes, untouched,
 * to where the app was going. Measured against the same app in a pod without interception.
 * nginx has no column: its stream proxy cannot read SO_ORIGINAL_DST (ssl_preread routes by SNI,
 * which is another job), so no nginx configuration does the same thing.
 *
 * - `tls-passthrough`: 1 KB echo round trips on persistent TLS connections (opened, and each used
 *   once, before the clock starts), one in flight per connection, closed loop.
 * - `tls-passthrough-new-connections`: connect + full TLS 1.3 handshake (end to end, app ↔
 *   server; no session resumption) + one 1 KB round trip + close, closed-loop callers.
 */

export interface TlsPassthroughOutcome {
  /** For results.json `topology.tlsPassthrough`: what ran, or `skipped: <reason>`. */
  note: string;
  scenarios: ScenarioResult[];
  peak: ProcessPeak | null;
}

const NO_NGINX = 'no nginx column: nginx cannot read SO_ORIGINAL_DST, so it cannot pass an intercepted connection on to its original destination';

async function measure(t: PassthroughTarget, o: RunOptions, mode: 'persistent' | 'new', seconds: number, id: string): Promise<RunSample> {
  const before = cpuSnapshot(t.procs);
  const r = await t.run(mode, o.concurrency, seconds);
  const cpu = cpuPer1k(before, cpuSnapshot(t.procs), r.operations);
  if (r.operations === 0 || !r.latency) throw new BenchError('BENCH_WARMUP_FAILED', `${id} ${t.name}: nothing succeeded: ${r.firstError}`);
  return { latency: r.latency, operations: r.operations, operationsPerSec: r.operations / r.elapsedSeconds, errors: r.errors, cpuSecondsPer1k: cpu };
}

export async function tlsPassthrough(o: RunOptions & { metrics: boolean; runtime: SidecarRuntime }): Promise<TlsPassthroughOutcome> {
  const why = passthroughUnavailable();
  if (why !== null) {
    o.log(`tls-passthrough skipped: ${why}`);
    return { note: `skipped: ${why}`, scenarios: [], peak: null };
  }
  o.log('tls-passthrough: starting network-namespace pods (meshed client, direct client, TLS echo outside the mesh)');
  const pods = await startPassthroughPods(o);
  try {
    const peak: ProcessPeak = { process: 'meshlet-passthrough/outbound', peakRssBytes: 0, atReadyBytes: peakRssBytes(pods.sidecarPid), idleRssBytes: rssBytes(pods.sidecarPid), afterScenario: {}, rssAfterScenario: {} };
    const redirectsBefore = await pods.redirectedConnections();
    const scenarios: ScenarioResult[] = [];
    let meshletOperations = 0;
    for (const [id, mode] of [['tls-passthrough', 'persistent'], ['tls-passthrough-new-connections', 'new']] as const) {
      const runs = await interleave(
        id,
        pods.targets,
        o,
        async (t) => void (await measure(t, o, mode, o.warmupSeconds, id)),
        async (t) => {
          const s = await measure(t, o, mode, o.seconds, id);
          if (t.name === 'meshlet' && mode === 'new') meshletOperations += s.operations;
          return s;
        },
      );
      const targets = Object.fromEntries(pods.targets.map((t) => [t.name, summarizeRuns(runs.get(t.name)!)]));
      const path = `meshlet: the app (uid 1000) in the meshed pod → iptables REDIRECT (the injector's rules) → the outbound sidecar (uid 2020: SO_ORIGINAL_DST, ClientHello classified, passed through untouched) → the TLS echo server outside the mesh, SNI ${TLS_ECHO_SNI}; direct: the same app in a pod without rules → the server; ${NO_NGINX}`;
      scenarios.push(
        compareTargets(
          mode === 'persistent'
            ? {
                id,
                title: "TLS passthrough, persistent connections (the app's own TLS, 1 KB echo round trips)",
                method: `${o.concurrency} persistent TLS 1.3 connections (opened and used once before the clock starts), closed loop, one 1 KB message in flight per connection, ${o.seconds} s after ${o.warmupSeconds} s warm-up; latency = write → last echoed byte, every round trip timed inside the client pod; ${path}; CPU per 1,000 round trips of the sidecar`,
                unit: 'round trips/s',
                targets,
              }
            : {
                id,
                title: "TLS passthrough, new connection per round trip (connect + the app's TLS handshake + 1 KB echo + close)",
                method: `${o.concurrency} closed-loop callers, each connection: connect, a full TLS 1.3 handshake with the server (no resumption), one 1 KB round trip, FIN and wait for the server's, ${o.seconds} s after ${o.warmupSeconds} s warm-up; latency = connect → close, every connection timed inside the client pod; ${path}; CPU per 1,000 connections of the sidecar`,
                unit: 'connections/s',
                targets,
              },
        ),
      );
      peak.peakRssBytes = peakRssBytes(pods.sidecarPid);
      peak.afterScenario[id] = peak.peakRssBytes;
      peak.rssAfterScenario[id] = rssBytes(pods.sidecarPid);
    }
    // Proof the meshlet figures crossed the sidecar: every new connection of the measured runs was REDIRECTed.
    const redirected = (await pods.redirectedConnections()) - redirectsBefore;
    if (!(redirected >= meshletOperations)) {
      throw new BenchError('BENCH_NOT_READY', `tls-passthrough: the meshed pod's REDIRECT rule counted ${redirected} connections, fewer than the ${meshletOperations} measured new connections: the app's traffic did not go through the sidecar`);
    }
    o.log(`tls-passthrough: the meshed pod's nat REDIRECT counted ${redirected} connections (≥ ${meshletOperations} measured new connections)`);
    return { note: `measured: ${pods.note}; ${redirected} connections REDIRECTed to the sidecar during the runs; ${NO_NGINX}`, scenarios, peak };
  } finally {
    await pods.stop();
  }
}
