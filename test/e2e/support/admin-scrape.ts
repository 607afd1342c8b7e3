import { fetchAdmin } from '../../../src/cli/scrape/admin-client.ts';
import { parseExposition, type Exposition } from '../../../src/cli/scrape/parse-exposition.ts';
import { HarnessError, type Pod } from '../harness/index.ts';
import { ADMIN_PORT } from './meshed-pod.ts';

/**
 * A sidecar's admin port seen from outside the pod (the test process reaches pod IPs through
 * the harness's host link), as Prometheus and `meshlet top` see it.
 */
export class AdminScrape {
  readonly #exposition: Exposition;

  private constructor(exposition: Exposition) {
    this.#exposition = exposition;
  }

  static async of(adminUrl: string): Promise<AdminScrape> {
    const { body } = await fetchAdmin(new URL(adminUrl), '/metrics');
    return new AdminScrape(parseExposition(body));
  }

  /** Sum of the samples named `name` whose labels include every pair of `labels` (0 when none). */
  sum(name: string, labels: Readonly<Record<string, string>> = {}): number {
    let total = 0;
    for (const s of this.#exposition.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
    }
    return total;
  }
}

/** One entry of a sidecar's /connections list (the fields the tests read). */
export interface ListedConnection {
  direction: string;
  peerIdentity: string | null;
  remoteAddress: string;
  remotePort: number;
  tlsVersion: string | null;
}

/**
 * A pod's /connections, read the way an operator does (`kubectl exec … meshlet connections`):
 * from inside the pod, on loopback. The admin port refuses /connections on the pod IP
 * (MESHLET_ADMIN_CONNECTIONS defaults to loopback).
 */
export async function listConnections(p: { pod: Pod }): Promise<ListedConnection[]> {
  const r = await p.pod.execNode('bin/meshlet.js', ['connections', '--admin', `http://127.0.0.1:${ADMIN_PORT}`, '--output', 'json']);
  if (r.code !== 0) throw new HarnessError('E2E_COMMAND_FAILED', `meshlet connections in ${p.pod.netns} exited ${r.code}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { connections: ListedConnection[] }).connections;
}
