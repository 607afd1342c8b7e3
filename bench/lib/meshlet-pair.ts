import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BENCH_IDS, type SvidFiles } from './bench-pki.ts';
import { benchPolicyYaml } from './bench-policy.ts';
import { freePort, startProcess, stopProcess, waitUntil, type BenchProcess } from './child-process.ts';
import { BenchError } from './bench-error.ts';
import type { SidecarRuntime } from './sidecar-runtime.ts';

/** How the destination is named by the client app, as in a cluster: the Host the outbound routes by. */
export const MESH_HTTP_AUTHORITY = 'upstream:80';
export const MESH_GRPC_AUTHORITY = 'upstream-grpc:90';

/**
 * Two real `meshlet sidecar` processes configured as pods are: files identity, the server pod's
 * per-route policy from a mounted directory, admin and metrics on.
 */
export interface MeshletPair {
  /** What was started, for the report. */
  note: string;
  outboundPort: number;
  /** The server pod's mTLS listener for the HTTP app port (the new-connection scenario dials it). */
  inboundHttpPort: number;
  /** The client pod's opaque TCP listener (MESHLET_OUTBOUND_TCP): the app dials it, plain TCP. */
  outboundTcpPort: number;
  /** The server pod's `tcp` inbound port (mTLS in, the TCP echo app behind it). */
  inboundTcpPort: number;
  client: BenchProcess;
  server: BenchProcess;
  adminPorts: { client: number; server: number };
  stop(): Promise<void>;
}

export interface MeshletPairOptions {
  work: string;
  pki: { client: SvidFiles; server: SvidFiles };
  httpAppPort: number;
  grpcAppPort: number;
  /** The opaque TCP app (an echo server), declared `tcp` on the server pod. */
  tcpAppPort: number;
  /** Per-request metrics; `false` sets MESHLET_REQUEST_METRICS=false (issue 6's on/off comparison). */
  metrics: boolean;
  /** The artifact (or --sources) and the injector's Node flags and environment: what the injected container runs. */
  runtime: SidecarRuntime;
  /** Extra node flags on the command line (BENCH_SIDECAR_NODE_ARGS, --profile): after the injector's flags, so they win. */
  nodeArgs: string[];
}

/** The files identity source reads the csi-driver-spiffe layout: tls.crt, tls.key, ca.crt. */
async function svidDir(dir: string, files: SvidFiles): Promise<string> {
  await mkdir(dir, { recursive: true });
  await copyFile(files.svid, join(dir, 'tls.crt'));
  await copyFile(files.key, join(dir, 'tls.key'));
  await copyFile(files.bundle, join(dir, 'ca.crt'));
  return dir;
}

function isReady(adminPort: number): () => Promise<boolean> {
  return async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${adminPort}/ready`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  };
}

function sidecarEnv(common: Record<string, string>, own: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ...common, ...own };
}

/** Node flags the bench adds beyond the container's command: the report says so (such figures are not the pod's). */
function extraFlagsNote(o: MeshletPairOptions): string {
  return o.nodeArgs.length ? `; node flags added by the bench: ${o.nodeArgs.join(' ')} (BENCH_SIDECAR_NODE_ARGS / --profile)` : '';
}

/**
 * Starts the pair and waits until both answer /ready. A sidecar that exits or never gets ready
 * fails the bench (BENCH_SIDECAR_NOT_STARTED, with the sidecar's stderr): there is no stand-in.
 */
export async function startMeshletPair(o: MeshletPairOptions): Promise<MeshletPair> {
  const [clientOut, clientAdmin, clientCatchAll, clientTcp, serverOut, serverAdmin, serverCatchAll, serverHttp, serverGrpc, serverTcp] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  const serverPolicyDir = join(o.work, 'server-policy');
  const clientPolicyDir = join(o.work, 'client-policy');
  await mkdir(serverPolicyDir, { recursive: true });
  await mkdir(clientPolicyDir, { recursive: true });
  await writeFile(join(serverPolicyDir, 'policy.yaml'), benchPolicyYaml({ serverServiceAccount: 'server', clientId: BENCH_IDS.client, httpPort: o.httpAppPort, grpcPort: o.grpcAppPort, tcpPort: o.tcpAppPort }));
  const common = {
    MESHLET_NAMESPACE: 'bench',
    MESHLET_IDENTITY_SOURCE: 'files',
    MESHLET_ADMIN_ADDRESS: '127.0.0.1',
    MESHLET_LOG_LEVEL: 'warn',
    // As the injector sets it on the sidecar container: two malloc arenas (the Node flags are on the command line).
    ...o.runtime.env,
    ...(o.metrics ? {} : { MESHLET_REQUEST_METRICS: 'false' }),
  };
  const inbound = [`${o.httpAppPort}:${serverHttp}/http`, `${o.grpcAppPort}:${serverGrpc}/grpc`, `${o.tcpAppPort}:${serverTcp}/tcp`];
  const server = startProcess('meshlet sidecar (server pod)', process.execPath, [...o.runtime.nodeFlags, ...o.nodeArgs, o.runtime.entry, 'sidecar'], {
    env: sidecarEnv(common, {
      MESHLET_SERVICE_ACCOUNT: 'server',
      MESHLET_POD_NAME: 'bench-server',
      MESHLET_SVID_DIR: await svidDir(join(o.work, 'server-svid'), o.pki.server),
      MESHLET_INBOUND_PORTS: inbound.join(','),
      MESHLET_APP_ADDRESS: '127.0.0.1',
      MESHLET_OUTBOUND_PORT: String(serverOut),
      MESHLET_ADMIN_PORT: String(serverAdmin),
      MESHLET_INBOUND_CATCHALL_PORT: String(serverCatchAll),
      MESHLET_POLICY_DIR: serverPolicyDir,
    }),
  });
  const client = startProcess('meshlet sidecar (client pod)', process.execPath, [...o.runtime.nodeFlags, ...o.nodeArgs, o.runtime.entry, 'sidecar'], {
    env: sidecarEnv(common, {
      MESHLET_SERVICE_ACCOUNT: 'client',
      MESHLET_POD_NAME: 'bench-client',
      MESHLET_SVID_DIR: await svidDir(join(o.work, 'client-svid'), o.pki.client),
      MESHLET_OUTBOUND_PORT: String(clientOut),
      MESHLET_ADMIN_PORT: String(clientAdmin),
      MESHLET_INBOUND_CATCHALL_PORT: String(clientCatchAll),
      MESHLET_POLICY_DIR: clientPolicyDir,
      MESHLET_DESTINATION_ADDRESSES: `${MESH_HTTP_AUTHORITY}=127.0.0.1:${serverHttp},${MESH_GRPC_AUTHORITY}=127.0.0.1:${serverGrpc}`,
      MESHLET_DESTINATION_IDENTITIES: `${MESH_HTTP_AUTHORITY}=${BENCH_IDS.server},${MESH_GRPC_AUTHORITY}=${BENCH_IDS.server}`,
      // Opaque TCP: an explicit mapping (docs/proxy-tcp.md), the server pod's SPIFFE ID pinned.
      MESHLET_OUTBOUND_TCP: `${clientTcp}=127.0.0.1:${serverTcp}@${BENCH_IDS.server}`,
    }),
  });
  const stop = async () => {
    await Promise.all([stopProcess(client), stopProcess(server)]);
  };
  try {
    await Promise.all([waitUntil(server, '/ready = 200', isReady(serverAdmin)), waitUntil(client, '/ready = 200', isReady(clientAdmin))]);
  } catch (err) {
    await stop();
    throw new BenchError('BENCH_SIDECAR_NOT_STARTED', `\`meshlet sidecar\` did not start (nothing else is measured in its place): ${(err as Error).message}`, { cause: err });
  }
  const metricsNote = o.metrics ? 'on' : 'per-request metrics off (MESHLET_REQUEST_METRICS=false)';
  return {
    note: `two \`meshlet sidecar\` processes: files identity, per-route policy from a mounted directory, metrics ${metricsNote}${extraFlagsNote(o)}`,
    outboundPort: clientOut,
    inboundHttpPort: serverHttp,
    outboundTcpPort: clientTcp,
    inboundTcpPort: serverTcp,
    client,
    server,
    adminPorts: { client: clientAdmin, server: serverAdmin },
    stop,
  };
}
