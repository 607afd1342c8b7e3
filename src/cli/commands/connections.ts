import type { Command } from '../command.ts';
import { parseFlags, requireFlag } from '../command.ts';
import { UsageError } from '../../common/errors/meshlet-error.ts';
import { AdminBadResponseError, fetchAdmin, parseAdminUrl } from '../scrape/admin-client.ts';
import { formatAge, formatBytes, formatTable } from '../scrape/format-table.ts';
import type { ConnectionSnapshot } from '../../data-plane/proxy/connection-registry.ts';

const help = `Usage: meshlet connections --admin URL [--output table|json]

Lists the live connections of a sidecar, from its admin port's /connections endpoint:
one row per connection with its direction, role (accepted: a caller or the app connected
to the sidecar; originated: the sidecar connected to the next hop), the peer's verified
SPIFFE ID ("-" when there is none: plaintext, or the app's side), local and remote
addresses, bytes in and out, requests served, age and TLS version.

The sidecar serves /connections to loopback callers only (unless the pod sets
MESHLET_ADMIN_CONNECTIONS=network): run this through kubectl port-forward or kubectl exec,
both of which reach the admin port on the pod's loopback. A caller on the pod IP gets 403.

Flags:
  --admin URL          the sidecar's admin address, e.g. http://127.0.0.1:15020
                       (kubectl port-forward pod/NAME 15020 first, from outside the pod)
  --output table|json  json: the endpoint's JSON document as is, {"connections": [...]}

Exit status: 0 on success, 1 when the admin port is unreachable, refuses (403: not a
loopback caller) or answers something that is not a connection list, 2 on a usage error.`;

const FIELDS: readonly (keyof ConnectionSnapshot)[] = ['id', 'direction', 'role', 'localAddress', 'localPort', 'remoteAddress', 'remotePort', 'bytesIn', 'bytesOut', 'requests', 'ageSeconds'];

/** Checks the document really is a connection list before anything is printed from it. */
function parseConnections(url: string, body: string): ConnectionSnapshot[] {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw new AdminBadResponseError(url, 'the body is not JSON');
  }
  const list = (doc as { connections?: unknown } | null)?.connections;
  if (!Array.isArray(list)) throw new AdminBadResponseError(url, 'no "connections" array in the JSON');
  for (const [i, c] of list.entries()) {
    const missing = FIELDS.find((f) => (c as Record<string, unknown> | null)?.[f] === undefined);
    if (missing !== undefined) throw new AdminBadResponseError(url, `connection ${i} has no "${missing}"`);
  }
  return list as ConnectionSnapshot[];
}

function address(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function connectionsTable(connections: readonly ConnectionSnapshot[]): string {
  const sorted = [...connections].sort((a, b) => a.direction.localeCompare(b.direction) || a.id - b.id);
  const rows = sorted.map((c) => [
    String(c.id),
    c.direction,
    c.role,
    c.peerIdentity ?? '-',
    address(c.localAddress, c.localPort),
    address(c.remoteAddress, c.remotePort),
    formatBytes(c.bytesIn),
    formatBytes(c.bytesOut),
    String(c.requests),
    formatAge(c.ageSeconds),
    c.tlsVersion ?? 'plaintext',
  ]);
  return formatTable(['ID', 'DIRECTION', 'ROLE', 'PEER', 'LOCAL', 'REMOTE', 'IN', 'OUT', 'REQS', 'AGE', 'TLS'], rows, new Set([0, 6, 7, 8, 9]));
}

export const commands: Command[] = [
  {
    name: 'connections',
    summary: "list a sidecar's live connections (peer, addresses, bytes, requests, age, TLS)",
    help,
    async run(argv, io) {
      const { values } = parseFlags(argv, { admin: { type: 'string' }, output: { type: 'string', default: 'table' } });
      const base = parseAdminUrl(requireFlag(values, 'admin'));
      if (values.output !== 'table' && values.output !== 'json') throw new UsageError('--output must be table or json');
      const url = new URL('/connections', base).toString();
      const { body } = await fetchAdmin(base, '/connections', { accept: 'application/json' });
      const connections = parseConnections(url, body);
      if (values.output === 'json') {
        io.stdout.write(JSON.stringify({ connections }, null, 2) + '\n');
      } else if (connections.length === 0) {
        io.stdout.write('no live connections\n');
      } else {
        io.stdout.write(connectionsTable(connections));
      }
      return 0;
    },
  },
];
