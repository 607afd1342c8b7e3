import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeBenchPki, type SvidFiles } from './bench-pki.ts';
import { BENCH_PATH } from './bench-policy.ts';
import { freePort, startProcess, stopProcess, waitForPort, type BenchProcess } from './child-process.ts';
import { nginxGrpcInboundConf, nginxGrpcOutboundConf, nginxInboundConf, nginxOutboundConf, upstreamConf } from './nginx-conf.ts';
import { MESH_GRPC_AUTHORITY, MESH_HTTP_AUTHORITY, startMeshletPair, type MeshletPair } from './meshlet-pair.ts';
import type { HttpEndpoint } from './http-sampler.ts';
import type { ProxyProcess } from './process-usage.ts';

export type TargetName = 'direct' | 'meshlet' | 'nginx';

export interface HttpTarget {
  name: TargetName;
  endpoint: HttpEndpoint;
  /** The proxy processes this target's traffic crosses (none for direct). */
  procs: ProxyProcess[];
}

export interface GrpcTarget {
  name: TargetName;
  /** host:port the gRPC client dials (plaintext h2c, as an app does towards its sidecar). */
  address: string;
  /** :authority the client sends; the mesh routes by it. */
  authority: string;
  procs: ProxyProcess[];
}

/** The new-connection scenario dials the server side's listener directly: one mTLS handshake per request. */
export interface ConnectTarget {
  name: TargetName;
  port: number;
  /** Client certificate to present (the client pod's SVID); null for direct (plain TCP). */
  tls: SvidFiles | null;
  hostHeader: string;
  procs: ProxyProcess[];
}

export interface Topology {
  upstream: { kind: 'nginx' | 'node'; note: string };
  nginx: { available: boolean; path: string | null; note: string };
  meshlet: { note: string; pids: { client: number; server: number }; adminPorts: MeshletPair['adminPorts'] };
  http: HttpTarget[];
  grpc: GrpcTarget[];
  connect: ConnectTarget[];
  stop(): Promise<void>;
}

const NGINX_CANDIDATES = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx', '/usr/local/nginx/sbin/nginx'];

export function findNginx(): string | null {
  return NGINX_CANDIDATES.find((p) => existsSync(p)) ?? null;
}

async function startNginxProcess(nginx: string, dir: string, name: string, conf: string): Promise<BenchProcess> {
  const file = join(dir, `${name}.conf`);
  await writeFile(file, conf);
  return startProcess(`nginx ${name}`, nginx, ['-c', file, '-p', dir, '-e', join(dir, `${name}.error.log`)]);
}

export interface TopologyOptions {
  work: string;
  metrics: boolean;
  /** Extra node flags for the sidecars (e.g. --cpu-prof). */
  sidecarNodeArgs: string[];
  log: (line: string) => void;
}

/**
 * Everything the bench measures, on loopback: the upstreams (HTTP 1 KB, gRPC echo), the meshlet
 * pair, and the nginx mTLS pair built from the same certificates. Every process is its own, so
 * /proc gives each one's CPU time and peak RSS.
 */
export async function startTopology(o: TopologyOptions): Promise<Topology> {
  const started: BenchProcess[] = [];
  let meshlet: MeshletPair | null = null;
  const stop = async () => {
    await meshlet?.stop();
    await Promise.all(started.map(stopProcess));
  };
  try {
    const pki = await writeBenchPki(join(o.work, 'pki'));
    const nginx = findNginx();
    const nginxDir = join(o.work, 'nginx');
    await mkdir(nginxDir, { recursive: true });
    const [httpApp, grpcApp, nginxOut, nginxIn, nginxGrpcOut, nginxGrpcIn] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);

    let upstreamKind: 'nginx' | 'node';
    let upstream: BenchProcess;
    if (nginx) {
      upstream = await startNginxProcess(nginx, nginxDir, 'upstream', upstreamConf(nginxDir, httpApp));
      upstreamKind = 'nginx';
    } else {
      upstream = startProcess('node upstream', process.execPath, [join(import.meta.dirname, 'node-upstream-process.ts'), String(httpApp)]);
      upstreamKind = 'node';
    }
    started.push(upstream);
    const grpcUpstream = startProcess('grpc upstream', process.execPath, [join(import.meta.dirname, 'grpc-upstream-process.ts'), String(grpcApp)]);
    started.push(grpcUpstream);
    await Promise.all([waitForPort(upstream, httpApp), waitForPort(grpcUpstream, grpcApp)]);
    o.log(`upstream: ${upstreamKind} on ${httpApp} (1 KB body); gRPC echo (grpc-js) on ${grpcApp}`);

    meshlet = await startMeshletPair({ work: join(o.work, 'meshlet'), pki, httpAppPort: httpApp, grpcAppPort: grpcApp, metrics: o.metrics, nodeArgs: o.sidecarNodeArgs });
    o.log(`meshlet: ${meshlet.note}`);
    const meshProcs: ProxyProcess[] = [
      { role: 'outbound', pid: meshlet.client.pid },
      { role: 'inbound', pid: meshlet.server.pid },
    ];

    const http: HttpTarget[] = [
      { name: 'direct', endpoint: { host: '127.0.0.1', port: httpApp, hostHeader: `127.0.0.1:${httpApp}`, path: BENCH_PATH }, procs: [] },
      { name: 'meshlet', endpoint: { host: '127.0.0.1', port: meshlet.outboundPort, hostHeader: MESH_HTTP_AUTHORITY, path: BENCH_PATH }, procs: meshProcs },
    ];
    const grpc: GrpcTarget[] = [
      { name: 'direct', address: `127.0.0.1:${grpcApp}`, authority: `127.0.0.1:${grpcApp}`, procs: [] },
      { name: 'meshlet', address: `127.0.0.1:${meshlet.outboundPort}`, authority: MESH_GRPC_AUTHORITY, procs: meshProcs },
    ];
    const connect: ConnectTarget[] = [
      { name: 'direct', port: httpApp, tls: null, hostHeader: `127.0.0.1:${httpApp}`, procs: [] },
      { name: 'meshlet', port: meshlet.inboundHttpPort, tls: pki.client, hostHeader: MESH_HTTP_AUTHORITY, procs: [{ role: 'inbound', pid: meshlet.server.pid }] },
    ];

    let nginxNote: string;
    if (nginx) {
      const inb = await startNginxProcess(nginx, nginxDir, 'nginx-in', nginxInboundConf(nginxDir, nginxIn, httpApp, pki.server));
      const out = await startNginxProcess(nginx, nginxDir, 'nginx-out', nginxOutboundConf(nginxDir, nginxOut, nginxIn, pki.client));
      const gin = await startNginxProcess(nginx, nginxDir, 'grpc-in', nginxGrpcInboundConf(nginxDir, nginxGrpcIn, grpcApp, pki.server));
      const gout = await startNginxProcess(nginx, nginxDir, 'grpc-out', nginxGrpcOutboundConf(nginxDir, nginxGrpcOut, nginxGrpcIn, pki.client));
      started.push(inb, out, gin, gout);
      await Promise.all([waitForPort(inb, nginxIn), waitForPort(out, nginxOut), waitForPort(gin, nginxGrpcIn), waitForPort(gout, nginxGrpcOut)]);
      const procs = [
        { role: 'outbound', pid: out.pid },
        { role: 'inbound', pid: inb.pid },
      ];
      http.push({ name: 'nginx', endpoint: { host: '127.0.0.1', port: nginxOut, hostHeader: MESH_HTTP_AUTHORITY, path: BENCH_PATH }, procs });
      grpc.push({
        name: 'nginx',
        address: `127.0.0.1:${nginxGrpcOut}`,
        authority: MESH_GRPC_AUTHORITY,
        procs: [
          { role: 'outbound', pid: gout.pid },
          { role: 'inbound', pid: gin.pid },
        ],
      });
      connect.push({ name: 'nginx', port: nginxIn, tls: pki.client, hostHeader: MESH_HTTP_AUTHORITY, procs: [{ role: 'inbound', pid: inb.pid }] });
      nginxNote = `${nginx}: one process per proxy (master_process off, 1 worker), TLS 1.3 mTLS with the same SVID files, keep-alive pools on both legs`;
    } else {
      nginxNote = 'nginx is MISSING on this machine: no peer figures. `apt-get install nginx-light` provides it (.ci/run installs it).';
    }
    o.log(`nginx: ${nginxNote}`);
    return {
      upstream: { kind: upstreamKind, note: upstreamKind === 'nginx' ? 'nginx returning a 1 KB body' : 'node:http server returning a 1 KB body (nginx missing)' },
      nginx: { available: nginx !== null, path: nginx, note: nginxNote },
      meshlet: { note: meshlet.note, pids: { client: meshlet.client.pid, server: meshlet.server.pid }, adminPorts: meshlet.adminPorts },
      http,
      grpc,
      connect,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
