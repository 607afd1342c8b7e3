import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeBenchPki, type SvidFiles } from './bench-pki.ts';
import { BENCH_PATH } from './bench-policy.ts';
import { freePort, startProcess, stopProcess, waitForPort, type BenchProcess } from './child-process.ts';
import { nginxGrpcInboundConf, nginxGrpcOutboundConf, nginxInboundConf, nginxOutboundConf, nginxStreamInboundConf, nginxStreamOutboundConf, upstreamConf } from './nginx-conf.ts';
import { MESH_GRPC_AUTHORITY, MESH_HTTP_AUTHORITY, startMeshletPair, type MeshletPair } from './meshlet-pair.ts';
import type { HttpEndpoint } from './http-sampler.ts';
import type { ProxyProcess } from './process-usage.ts';
import type { SidecarRuntime } from './sidecar-runtime.ts';

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

/** The opaque TCP scenarios dial `port` with plain TCP, as an app dials its sidecar's mapped port. */
export interface TcpTarget {
  name: TargetName;
  port: number;
  procs: ProxyProcess[];
}

export interface Topology {
  upstream: { kind: 'nginx' | 'node'; note: string };
  nginx: { available: boolean; path: string | null; note: string };
  /** nginx's stream module (the peer of the opaque TCP scenarios): whether it ran, and why not. */
  nginxStream: { available: boolean; note: string };
  meshlet: { note: string; runtime: string; pids: { client: number; server: number }; adminPorts: MeshletPair['adminPorts'] };
  http: HttpTarget[];
  grpc: GrpcTarget[];
  connect: ConnectTarget[];
  tcp: TcpTarget[];
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

const STREAM_MODULE = 'ngx_stream_module.so';

/**
 * Whether this nginx can run a `stream {}` block: built in (`--with-stream`), or built
 * `--with-stream=dynamic` with the module file present (Debian: libnginx-mod-stream) — then
 * `loadModule` is the file to `load_module`. Otherwise `reason` says what is missing.
 */
export function nginxStreamModule(nginx: string): { loadModule: string | null } | { reason: string } {
  // `nginx -V` prints the configure arguments on stderr.
  const v = spawnSync(nginx, ['-V'], { encoding: 'utf8' }).stderr ?? '';
  if (/--with-stream(\s|$)/.test(v)) return { loadModule: null };
  if (!/--with-stream=dynamic/.test(v)) return { reason: `${nginx} is built without the stream module (no --with-stream in nginx -V)` };
  const dirs = [/--modules-path=(\S+)/.exec(v)?.[1], '/usr/lib/nginx/modules', '/usr/lib64/nginx/modules', '/usr/share/nginx/modules', '/etc/nginx/modules'].filter((d): d is string => !!d);
  const found = dirs.map((d) => join(d, STREAM_MODULE)).find((f) => existsSync(f));
  if (!found) return { reason: `${nginx} is built --with-stream=dynamic but ${STREAM_MODULE} is not installed (looked in ${[...new Set(dirs)].join(', ')}; Debian: apt-get install libnginx-mod-stream, which .ci/run installs)` };
  return { loadModule: found };
}

/** `nginx -t` on a configuration: null when nginx accepts it, else its complaint (e.g. a module built for another nginx). */
function nginxConfigError(nginx: string, dir: string, file: string): string | null {
  const r = spawnSync(nginx, ['-t', '-q', '-c', file, '-p', dir, '-e', join(dir, 'stream-check.error.log')], { encoding: 'utf8' });
  if (r.status === 0) return null;
  return (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').filter(Boolean).slice(-2).join(' ');
}

export interface TopologyOptions {
  work: string;
  metrics: boolean;
  /** What the sidecars run: the artifact (or the sources) and the injector's Node flags and environment. */
  sidecarRuntime: SidecarRuntime;
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
    const [httpApp, grpcApp, tcpApp, nginxOut, nginxIn, nginxGrpcOut, nginxGrpcIn, nginxStreamOut, nginxStreamIn] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);

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
    const tcpUpstream = startProcess('tcp echo upstream', process.execPath, [join(import.meta.dirname, 'tcp-echo-process.ts'), String(tcpApp)]);
    started.push(tcpUpstream);
    await Promise.all([waitForPort(upstream, httpApp), waitForPort(grpcUpstream, grpcApp), waitForPort(tcpUpstream, tcpApp)]);
    o.log(`upstream: ${upstreamKind} on ${httpApp} (1 KB body); gRPC echo (grpc-js) on ${grpcApp}; TCP echo (node:net) on ${tcpApp}`);

    meshlet = await startMeshletPair({ work: join(o.work, 'meshlet'), pki, httpAppPort: httpApp, grpcAppPort: grpcApp, tcpAppPort: tcpApp, metrics: o.metrics, runtime: o.sidecarRuntime, nodeArgs: o.sidecarNodeArgs });
    o.log(`meshlet: ${meshlet.note}`);
    o.log(`meshlet sidecars run: ${o.sidecarRuntime.note}`);
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
    const tcp: TcpTarget[] = [
      { name: 'direct', port: tcpApp, procs: [] },
      { name: 'meshlet', port: meshlet.outboundTcpPort, procs: meshProcs },
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

    let streamNote: string;
    const stream = nginx ? nginxStreamModule(nginx) : { reason: 'nginx is missing (apt-get install nginx-light libnginx-mod-stream)' };
    let streamReason = 'reason' in stream ? stream.reason : null;
    if (nginx && 'loadModule' in stream) {
      const inConf = nginxStreamInboundConf(nginxDir, nginxStreamIn, tcpApp, pki.server, stream.loadModule);
      const outConf = nginxStreamOutboundConf(nginxDir, nginxStreamOut, nginxStreamIn, pki.client, stream.loadModule);
      await writeFile(join(nginxDir, 'stream-check.conf'), inConf);
      streamReason = nginxConfigError(nginx, nginxDir, join(nginxDir, 'stream-check.conf'));
      if (streamReason === null) {
        const sin = await startNginxProcess(nginx, nginxDir, 'stream-in', inConf);
        const sout = await startNginxProcess(nginx, nginxDir, 'stream-out', outConf);
        started.push(sin, sout);
        await Promise.all([waitForPort(sin, nginxStreamIn), waitForPort(sout, nginxStreamOut)]);
        tcp.push({
          name: 'nginx',
          port: nginxStreamOut,
          procs: [
            { role: 'outbound', pid: sout.pid },
            { role: 'inbound', pid: sin.pid },
          ],
        });
      }
    }
    if (streamReason === null) {
      streamNote = `stream proxy pair (${'loadModule' in stream && stream.loadModule ? `load_module ${stream.loadModule}` : 'stream module built in'}): plain TCP in, TLS 1.3 mTLS with the same SVID files between the two, plain TCP to the echo app; one process each (master_process off, 1 worker); each resumes its last TLS 1.3 session with the peer (proxy_ssl_session_reuse on, as meshlet's MESHLET_TLS_SESSION_RESUMPTION=on)`;
    } else {
      streamNote = `nginx stream module not available: ${streamReason}`;
    }
    o.log(`nginx stream: ${streamNote}`);
    return {
      upstream: { kind: upstreamKind, note: upstreamKind === 'nginx' ? 'nginx returning a 1 KB body' : 'node:http server returning a 1 KB body (nginx missing)' },
      nginx: { available: nginx !== null, path: nginx, note: nginxNote },
      nginxStream: { available: streamReason === null, note: streamNote },
      meshlet: { note: meshlet.note, runtime: o.sidecarRuntime.note, pids: { client: meshlet.client.pid, server: meshlet.server.pid }, adminPorts: meshlet.adminPorts },
      http,
      grpc,
      connect,
      tcp,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
