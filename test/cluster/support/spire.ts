import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../support/free-port.ts';

/**
 * A real SPIRE on this machine for test/cluster/spire.test.ts: spire-server (sqlite datastore,
 * join-token node attestation) and spire-agent (unix workload attestor), both on loopback and
 * Unix sockets in one temp dir, built from source by test/cluster/build/spire.sh.
 */

const BUILD_SCRIPT = fileURLToPath(new URL('../build/spire.sh', import.meta.url));
const BUILD_MODULE = fileURLToPath(new URL('../build/spire/go.mod', import.meta.url));

/** The SPIRE release test/cluster/build/spire/go.mod pins (what spire.sh builds). */
export const SPIRE_VERSION = /^require github\.com\/spiffe\/spire (v\S+)$/m.exec(readFileSync(BUILD_MODULE, 'utf8'))?.[1] ?? 'unknown';

export function spireCacheBin(): string {
  return join(process.env['MESHLET_CLUSTER_CACHE'] ?? join(process.env['HOME'] ?? tmpdir(), '.cache', 'meshlet-cluster'), 'bin');
}

export interface SpireBinaries {
  server: string;
  agent: string;
}

function onPath(name: string): boolean {
  return (process.env['PATH'] ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, name)));
}

/**
 * Why this suite cannot run here, or undefined when it can: SPIRE needs Linux; workloads are
 * told apart by uid (unix:uid selectors), so the test spawns them as other uids, which needs
 * root; and the binaries must be cached already or buildable (go and a C compiler for sqlite3).
 */
export function spireSkipReason(): string | undefined {
  if (process.platform !== 'linux') return `SPIRE's unix workload attestor needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'the workloads run as their own uids (unix:uid selectors), which needs root';
  const bin = spireCacheBin();
  if (existsSync(join(bin, `spire-server-${SPIRE_VERSION}`)) && existsSync(join(bin, `spire-agent-${SPIRE_VERSION}`))) return undefined;
  if (!onPath('go')) return `go is not on PATH and no cached SPIRE ${SPIRE_VERSION} binaries are in ${bin}; install Go >= 1.25 (the Go module proxy must be reachable) and rerun`;
  if (!onPath(process.env['CC'] ?? 'cc')) return 'no C compiler on PATH: spire-server\'s sqlite3 datastore needs CGO';
  return undefined;
}

/** Runs test/cluster/build/spire.sh (a no-op when the binaries are cached); its progress goes to stderr. */
export async function buildSpire(): Promise<SpireBinaries & { seconds: number }> {
  const started = Date.now();
  const r = await run('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] }, { echoStderr: true });
  if (r.code !== 0) throw new Error(`test/cluster/build/spire.sh exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  const paths = Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
  const server = paths['spire-server'];
  const agent = paths['spire-agent'];
  if (!server || !agent) throw new Error(`spire.sh printed no binary paths:\n${r.stdout}`);
  return { server, agent, seconds: (Date.now() - started) / 1000 };
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (its own process group, killed if it outlives timeoutMs). */
function run(cmd: string, args: string[], options: SpawnOptions = {}, extra: { echoStderr?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d));
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d;
      if (extra.echoStderr) process.stderr.write(d);
    });
    const timer = extra.timeoutMs ? setTimeout(() => killGroup(child, 'SIGKILL'), extra.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** A long-running child in its own process group, with its output kept for error messages. */
export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  #out = '';

  constructor(name: string, cmd: string, args: string[], options: SpawnOptions) {
    this.name = name;
    this.child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child.stdout?.on('data', (d: Buffer) => (this.#out += d));
    this.child.stderr?.on('data', (d: Buffer) => (this.#out += d));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    this.child.on('error', (err) => (this.#out += `\nspawn error: ${err.message}\n`));
    live.add(this);
  }

  output(): string {
    return this.#out;
  }

  tail(chars = 3000): string {
    return `--- ${this.name} (last output) ---\n${this.#out.slice(-chars)}`;
  }

  running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM to the whole group, SIGKILL after graceMs; resolves once it exited. */
  async stop(graceMs = 5_000): Promise<void> {
    live.delete(this);
    if (!this.running()) return;
    killGroup(this.child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(this.child, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    killGroup(this.child, 'SIGKILL'); // anything left in the group
  }
}

// Whatever happens to the test worker, nothing it started outlives it.
const live = new Set<ManagedProcess>();
process.once('exit', () => {
  for (const p of live) killGroup(p.child, 'SIGKILL');
});

/** Thrown by an until() probe when waiting longer cannot help (the process it waits for exited). */
export class GaveUp extends Error {}

/** Polls probe until it returns a value; probe errors are retried (and reported on timeout), GaveUp is not. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, context: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      if (err instanceof GaveUp) throw new Error(`gave up waiting for ${what}: ${err.message}\n${context()}`);
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}\n${context()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface X509Material {
  spiffeId: string;
  certPem: string;
  keyPem: string;
  bundlePem: string;
}

export interface SpireOptions {
  binaries: SpireBinaries;
  trustDomain: string;
  /** The server's default X509-SVID TTL (the agent rotates at about half of it). */
  x509SvidTtl: string;
  /** The server CA's TTL. */
  caTtl: string;
}

/** spire-server + one spire-agent, attested with a join token. */
export class Spire {
  readonly dir: string;
  readonly serverSocket: string;
  readonly agentSocket: string;
  /** The agent's SPIFFE ID: the parent of every workload entry. */
  agentId = '';
  serverPort = 0;
  /** How long each took from spawn to a passing healthcheck. */
  readonly startMs = { server: 0, agent: 0 };
  readonly #opts: SpireOptions;
  #server: ManagedProcess | undefined;
  #agent: ManagedProcess | undefined;
  /** A world-executable copy of spire-agent, for `api fetch` as a workload uid (the cache may be under a 0700 $HOME). */
  #agentCli = '';

  private constructor(dir: string, opts: SpireOptions) {
    this.dir = dir;
    this.#opts = opts;
    this.serverSocket = join(dir, 'server', 'api.sock');
    this.agentSocket = join(dir, 'sockets', 'agent.sock');
  }

  static async start(opts: SpireOptions): Promise<Spire> {
    const dir = await mkdtemp(join(tmpdir(), 'meshlet-spire-'));
    // Workloads run as other uids: they must reach the agent socket (the agent makes it 0777).
    await chmod(dir, 0o755);
    const spire = new Spire(dir, opts);
    try {
      await spire.#startServer();
      await spire.#startAgent();
    } catch (err) {
      await spire.close();
      throw err;
    }
    return spire;
  }

  async #startServer(): Promise<void> {
    const [port] = await freePorts(1);
    await mkdir(join(this.dir, 'server'), { mode: 0o700 });
    const conf = join(this.dir, 'server', 'server.conf');
    await writeFile(
      conf,
      `server {
  bind_address = "127.0.0.1"
  bind_port = "${port}"
  socket_path = "${this.serverSocket}"
  trust_domain = "${this.#opts.trustDomain}"
  data_dir = "${join(this.dir, 'server', 'data')}"
  log_level = "INFO"
  ca_key_type = "ec-p256"
  ca_ttl = "${this.#opts.caTtl}"
  default_x509_svid_ttl = "${this.#opts.x509SvidTtl}"
  # The agent's own SVID needs no rotation during the test.
  agent_ttl = "1h"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${join(this.dir, 'server', 'datastore.sqlite3')}"
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
}
`,
    );
    this.serverPort = port!;
    const t0 = Date.now();
    this.#server = new ManagedProcess('spire-server', this.#opts.binaries.server, ['run', '-config', conf], {});
    await until(
      'spire-server healthcheck',
      async () => {
        if (!this.#server!.running()) throw new GaveUp(`spire-server exited ${this.#server!.child.exitCode}`);
        return (await this.server(['healthcheck'])).code === 0 ? true : undefined;
      },
      60_000,
      () => this.#server!.tail(),
    );
    this.startMs.server = Date.now() - t0;
  }

  async #startAgent(): Promise<void> {
    const bundle = await this.server(['bundle', 'show', '-format', 'pem']);
    if (bundle.code !== 0) throw new Error(`spire-server bundle show failed: ${bundle.stderr}`);
    const agentDir = join(this.dir, 'agent');
    await mkdir(join(agentDir, 'keys'), { recursive: true, mode: 0o700 });
    const bundlePath = join(agentDir, 'bootstrap-bundle.pem');
    await writeFile(bundlePath, bundle.stdout);
    const token = await this.server(['token', 'generate', '-ttl', '600']);
    const tokenValue = /^Token: (\S+)$/m.exec(token.stdout)?.[1];
    if (token.code !== 0 || !tokenValue) throw new Error(`spire-server token generate failed: ${token.stdout}${token.stderr}`);
    this.agentId = `spiffe://${this.#opts.trustDomain}/spire/agent/join_token/${tokenValue}`;
    await mkdir(join(this.dir, 'sockets'), { mode: 0o755 });
    const conf = join(agentDir, 'agent.conf');
    await writeFile(
      conf,
      `agent {
  data_dir = "${join(agentDir, 'data')}"
  log_level = "INFO"
  server_address = "127.0.0.1"
  server_port = "${this.serverPort}"
  socket_path = "${this.agentSocket}"
  trust_domain = "${this.#opts.trustDomain}"
  # The server's bundle, fetched over its admin socket: no insecure bootstrap.
  trust_bundle_path = "${bundlePath}"
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  # On disk, so a restarted agent keeps its node SVID (a join token attests only once).
  KeyManager "disk" {
    plugin_data {
      directory = "${join(agentDir, 'keys')}"
    }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`,
    );
    this.#agentCli = join(this.dir, 'spire-agent');
    await copyFile(this.#opts.binaries.agent, this.#agentCli);
    await chmod(this.#agentCli, 0o755);
    this.#agentConf = conf;
    this.startMs.agent = await this.#runAgent(['-joinToken', tokenValue]);
  }

  #agentConf = '';

  /** Starts spire-agent and waits for its healthcheck; returns how long that took (ms). */
  async #runAgent(extraArgs: string[]): Promise<number> {
    const t0 = Date.now();
    const agent = new ManagedProcess('spire-agent', this.#opts.binaries.agent, ['run', '-config', this.#agentConf, ...extraArgs], {});
    this.#agent = agent;
    await until(
      'spire-agent healthcheck',
      async () => {
        if (!agent.running()) throw new GaveUp(`spire-agent exited ${agent.child.exitCode}`);
        return (await run(this.#agentCli, ['healthcheck', '-socketPath', this.agentSocket], {}, { timeoutMs: 10_000 })).code === 0 ? true : undefined;
      },
      60_000,
      () => `${this.#server?.tail()}\n${agent.tail()}`,
    );
    return Date.now() - t0;
  }

  /**
   * Stops the agent (SIGTERM: its socket goes away), runs `whileDown`, and starts it again from
   * its data dir (no new attestation). Returns how long the restarted agent took to be healthy.
   */
  async restartAgent(whileDown: () => Promise<void>): Promise<number> {
    const previous = this.#agent;
    await previous?.stop();
    this.#previousAgentLogs += previous?.tail(1500) ?? '';
    await whileDown();
    return this.#runAgent([]);
  }

  #previousAgentLogs = '';

  /** `spire-server <args> -socketPath <server socket>`. */
  server(args: string[]): Promise<RunResult> {
    return run(this.#opts.binaries.server, [...args, '-socketPath', this.serverSocket], {}, { timeoutMs: 30_000 });
  }

  /** The trust domain's X.509 bundle as the server has it (PEM). */
  async bundlePem(): Promise<string> {
    const r = await this.server(['bundle', 'show', '-format', 'pem']);
    if (r.code !== 0) throw new Error(`spire-server bundle show failed: ${r.stderr}`);
    return r.stdout;
  }

  /** Registers `spiffeId` for processes running as `uid` on this agent; returns the entry id. */
  async createEntry(spiffeId: string, uid: number): Promise<string> {
    const r = await this.server(['entry', 'create', '-parentID', this.agentId, '-spiffeID', spiffeId, '-selector', `unix:uid:${uid}`]);
    const id = /^Entry ID\s*:\s*(\S+)$/m.exec(r.stdout)?.[1];
    if (r.code !== 0 || !id) throw new Error(`spire-server entry create ${spiffeId} failed: ${r.stdout}${r.stderr}`);
    return id;
  }

  /**
   * What the agent's Workload API gives a process running as uid:gid, fetched by
   * `spire-agent api fetch x509 -write` running as that uid (so the unix attestor sees it).
   * Retries while the agent has not synced the entry yet.
   */
  async fetchX509(uid: number, gid: number, timeoutMs = 60_000): Promise<X509Material> {
    const out = await mkdtemp(join(this.dir, `fetch-${uid}-`));
    await chown(out, uid, gid);
    try {
      return await until(
        `an X509-SVID for uid ${uid} from the agent`,
        async () => {
          const r = await run(this.#agentCli, ['api', 'fetch', 'x509', '-socketPath', this.agentSocket, '-write', out, '-timeout', '10s'], { uid, gid, cwd: out, env: { PATH: '/usr/bin:/bin' } }, { timeoutMs: 20_000 });
          if (r.code !== 0) throw new Error(`spire-agent api fetch x509 exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
          const spiffeId = /^SPIFFE ID:\s*(\S+)$/m.exec(r.stdout)?.[1] ?? '';
          return {
            spiffeId,
            certPem: await readFile(join(out, 'svid.0.pem'), 'utf8'),
            keyPem: await readFile(join(out, 'svid.0.key'), 'utf8'),
            bundlePem: await readFile(join(out, 'bundle.0.pem'), 'utf8'),
          };
        },
        timeoutMs,
      );
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }

  logs(): string {
    return `${this.#server?.tail() ?? ''}\n${this.#previousAgentLogs}\n${this.#agent?.tail() ?? ''}`;
  }

  /** Stops the agent, then the server, and removes the temp dir (also after a failed start). */
  async close(): Promise<void> {
    await this.#agent?.stop();
    await this.#server?.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
