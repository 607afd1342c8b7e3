import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import type { IptablesTools } from './availability.ts';
import { mustRun, runCommand, type CommandResult } from './command-runner.ts';
import { parseListeningPorts } from './listening-ports.ts';
import { nodeBinary, repoRoot } from './node-binary.ts';
import { PodProcess } from './pod-process.ts';

export interface SpawnOptions {
  /** Run as this uid (and gid, default = uid), supplementary groups cleared. Default: root. */
  uid?: number;
  gid?: number;
  /** The process's environment, on top of PATH (like a container's: nothing else inherited). */
  env?: Record<string, string>;
  /** Default: the repository root, so relative script paths work. */
  cwd?: string;
  /** For logs and error messages; default: the command's base name. */
  label?: string;
  /** spawnNode / execNode: Node's own flags, before the script (a container's `command`). */
  nodeFlags?: readonly string[];
}

export interface ExecOptions extends SpawnOptions {
  input?: string;
}

/**
 * A pod: its own network namespace, `eth0` on the cluster bridge with `ip`, a default route
 * via the node, loopback up, and /etc/netns/<netns>/hosts for name resolution.
 */
export class Pod {
  readonly name: string;
  readonly namespace: string;
  readonly netns: string;
  readonly ip: string;
  /** The pod's IPv6 address (ULA) when the cluster is dual-stack (`Cluster.create({ ipv6: true })`), else undefined. */
  readonly ip6: string | undefined;
  readonly #iptables: IptablesTools;
  readonly #hostsPath: string;
  readonly #processes = new Set<PodProcess>();

  constructor(fields: { name: string; namespace: string; netns: string; ip: string; ip6?: string; iptables: IptablesTools; hostsPath: string }) {
    this.name = fields.name;
    this.namespace = fields.namespace;
    this.netns = fields.netns;
    this.ip = fields.ip;
    this.ip6 = fields.ip6;
    this.#iptables = fields.iptables;
    this.#hostsPath = fields.hostsPath;
  }

  /** Starts a long-running process in the pod (see PodProcess for waiting and stopping). */
  spawn(cmd: string, args: readonly string[] = [], options: SpawnOptions = {}): PodProcess {
    const child = spawn('ip', this.#execArgs(cmd, args, options), {
      cwd: options.cwd ?? repoRoot,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, as a container is not in the terminal's: a Ctrl-C meant for
      // the runner (vitest, `meshlet demo --pods`) must not kill the pod's processes before
      // the runner stops them in order (sidecar drain) and deletes the namespaces.
      detached: true,
    });
    const proc = new PodProcess(`${this.name}/${options.label ?? cmd.split('/').pop()}`, child, `/run/netns/${this.netns}`);
    this.#processes.add(proc);
    void proc.exited.then(() => this.#processes.delete(proc));
    return proc;
  }

  /** Starts Node 24 on a script (path relative to the repository root, or absolute). */
  spawnNode(script: string, args: readonly string[] = [], options: SpawnOptions = {}): PodProcess {
    return this.spawn(nodeBinary, [...(options.nodeFlags ?? []), script, ...args], { label: script.split('/').pop(), ...options });
  }

  /** Runs a command in the pod to completion and returns its exit status and output. */
  async exec(cmd: string, args: readonly string[] = [], options: ExecOptions = {}): Promise<CommandResult> {
    const proc = this.spawn(cmd, args, options);
    proc.write(options.input ?? '');
    proc.endInput();
    const exit = await proc.exited;
    return { ...exit, stdout: proc.stdout, stderr: proc.stderr };
  }

  /** Runs Node 24 on a script to completion. */
  execNode(script: string, args: readonly string[] = [], options: ExecOptions = {}): Promise<CommandResult> {
    return this.exec(nodeBinary, [...(options.nodeFlags ?? []), script, ...args], options);
  }

  /**
   * Applies an iptables-restore script in the pod's netns, as the injected init container
   * does. Without --noflush, like `meshlet iptables apply`: each table named is replaced whole.
   * `-w`: the legacy backend's lock is machine-wide, shared by every namespace.
   */
  async applyIptables(script: string): Promise<void> {
    await mustRun('ip', ['netns', 'exec', this.netns, this.#iptables.restore, '-w'], { input: script });
  }

  /** The pod's rules as iptables-save prints them (one table, default nat). */
  iptablesSave(table: 'nat' | 'filter' | 'mangle' | 'raw' = 'nat'): Promise<string> {
    return mustRun('ip', ['netns', 'exec', this.netns, this.#iptables.save, '-t', table]);
  }

  /** TCP ports listening in the pod, on any address. */
  async listeningPorts(): Promise<Set<number>> {
    const r = await runCommand('ip', ['netns', 'exec', this.netns, 'cat', '/proc/net/tcp', '/proc/net/tcp6']);
    return parseListeningPorts(r.stdout);
  }

  /** Processes started by spawn/exec that are still running. */
  get processes(): readonly PodProcess[] {
    return [...this.#processes];
  }

  /** Stops every process started in this pod (SIGTERM, then SIGKILL after graceMs). */
  async stopAll(options: { graceMs?: number } = {}): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop(options)));
  }

  /** Rewritten in place, not replaced: running processes see it through their bind mount. */
  async writeHostsFile(text: string): Promise<void> {
    await writeFile(this.#hostsPath, text);
  }

  #execArgs(cmd: string, args: readonly string[], options: SpawnOptions): string[] {
    const argv = ['netns', 'exec', this.netns];
    if (options.uid !== undefined || options.gid !== undefined) {
      const uid = options.uid ?? 0;
      argv.push('setpriv', `--reuid=${uid}`, `--regid=${options.gid ?? uid}`, '--clear-groups', '--');
    }
    return [...argv, cmd, ...args];
  }
}
