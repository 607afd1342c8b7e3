import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { e2eAvailability, type IptablesTools } from './availability.ts';
import { mustRun, runCommand, runCommandSync } from './command-runner.ts';
import { HarnessError } from './errors.ts';
import { POD_RESOLV_CONF, renderHostsFile } from './hosts-file.ts';
import { deleteNetns, sweepLeftovers } from './leftover-sweeper.ts';
import { Pod } from './pod.ts';
import { bridgeName, checkLabel, hostLinkName, newRunId, nodeNetnsName, OWNER_DIR, ownerFile, podNetnsName, volumesRoot } from './run-names.ts';

export interface ClusterOptions {
  /**
   * Give the test process (root netns) a leg on the bridge at <pod range>.254, with a route
   * to the service range, so it can reach pod IPs and service VIPs directly (scrape a
   * sidecar's /metrics, play a client from outside the mesh). Default true.
   */
  hostAccess?: boolean;
  /**
   * Dual-stack pods: every pod also gets an IPv6 address from the ULA range
   * fd6d:6c00:0:<o>::/64 on its eth0 (same bridge, no router needed). Only pods see these
   * addresses: the root namespace (host access) stays IPv4-only. Default false.
   */
  ipv6?: boolean;
}

export interface ServicePort {
  port: number;
  targetPort: number;
}

export interface Service {
  name: string;
  namespace: string;
  vip: string;
  /** `<name>.<namespace>.svc.cluster.local` */
  fqdn: string;
  pod: Pod;
  ports: readonly ServicePort[];
}

const SERVICES_CHAIN = 'MESHLET_E2E_SERVICES';
const live = new Set<Cluster>();

/**
 * A one-node cluster made of network namespaces. The "node" is itself a namespace
 * (mlnode-<run>) holding the bridge, IP forwarding and the Service DNAT rules (what
 * kube-proxy does on a real node), so nothing global on the machine changes: forwarding and
 * br_netfilter settings are per namespace, and deleting the node namespace removes the bridge
 * and every veth end in it.
 *
 *   pods      10.213.<o>.2-253/24, gateway .1 (the bridge), the host .254 (with hostAccess)
 *   services  10.214.<o>.10+ (VIPs, DNAT in the node namespace, like ClusterIPs)
 */
export class Cluster {
  readonly runId: string;
  readonly nodeNetns: string;
  readonly bridge: string;
  readonly podCidr: string;
  readonly serviceCidr: string;
  readonly gatewayIp: string;
  /** The pods' IPv6 range with `ipv6: true`, else undefined. */
  readonly podCidr6: string | undefined;
  /** The test process's address on the bridge (hostAccess), else undefined. */
  readonly hostIp: string | undefined;
  readonly iptables: IptablesTools;
  /**
   * True when the node has br_netfilter: service traffic keeps the caller's pod IP as its
   * source. Without it the node masquerades service traffic (replies must come back through
   * the node to be un-DNATed), and the server sees the gateway's address.
   */
  readonly preservesSourceIp: boolean;
  readonly #octet: number;
  readonly #pods = new Map<string, Pod>();
  readonly #services = new Map<string, Service>();
  #nextPodHost = 2;
  #nextServiceHost = 10;
  #destroyed = false;

  private constructor(fields: { runId: string; octet: number; iptables: IptablesTools; hostAccess: boolean; preservesSourceIp: boolean; ipv6: boolean }) {
    this.runId = fields.runId;
    this.#octet = fields.octet;
    this.nodeNetns = nodeNetnsName(fields.runId);
    this.bridge = bridgeName(fields.runId);
    this.podCidr = `10.213.${fields.octet}.0/24`;
    this.serviceCidr = `10.214.${fields.octet}.0/24`;
    this.gatewayIp = `10.213.${fields.octet}.1`;
    this.podCidr6 = fields.ipv6 ? `fd6d:6c00:0:${fields.octet.toString(16)}::/64` : undefined;
    this.hostIp = fields.hostAccess ? `10.213.${fields.octet}.254` : undefined;
    this.iptables = fields.iptables;
    this.preservesSourceIp = fields.preservesSourceIp;
  }

  /** Sweeps leftovers of aborted runs, then builds the node. Call e2eAvailability() first. */
  static async create(options: ClusterOptions = {}): Promise<Cluster> {
    const availability = e2eAvailability();
    if (!availability.ok) throw new HarnessError('E2E_COMMAND_FAILED', `e2e pods cannot run here: ${availability.reason}`);
    await sweepLeftovers();
    const runId = newRunId();
    const hostAccess = options.hostAccess ?? true;
    const octet = await freeOctet();
    mkdirSync(OWNER_DIR, { recursive: true });
    writeFileSync(ownerFile(runId), `${process.pid}\n`);
    const ns = nodeNetnsName(runId);
    const br = bridgeName(runId);
    const gw = `10.213.${octet}.1`;
    // Registered before the first namespace exists: a failure half-way still tears down.
    const partial = { runId, nodeNetns: ns, podNetns: [] as string[] };
    pendingTeardowns.add(partial);
    try {
      await mustRun('ip', ['netns', 'add', ns]);
      await mustRun('ip', ['-n', ns, '-batch', '-'], {
        input: ['link set lo up', `link add ${br} type bridge`, `addr add ${gw}/24 dev ${br}`, `link set ${br} up`, ''].join('\n'),
      });
      // Per-namespace sysctls: the machine's own forwarding setting is untouched.
      await mustRun('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      const brnf = await runCommand('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.bridge.bridge-nf-call-iptables=1']);
      const preservesSourceIp = brnf.code === 0;
      const t = availability.iptables;
      await mustRun('ip', ['netns', 'exec', ns, t.restore, '-w'], {
        input: [
          '*nat',
          ':PREROUTING ACCEPT [0:0]',
          ':INPUT ACCEPT [0:0]',
          ':OUTPUT ACCEPT [0:0]',
          ':POSTROUTING ACCEPT [0:0]',
          `:${SERVICES_CHAIN} - [0:0]`,
          `-A PREROUTING -j ${SERVICES_CHAIN}`,
          // Without br_netfilter a reply bridged straight from server to client would skip the
          // node's conntrack and never be un-DNATed: masquerade so it comes back via the node.
          ...(preservesSourceIp ? [] : ['-A POSTROUTING -m conntrack --ctstate DNAT -j MASQUERADE']),
          'COMMIT',
          '',
        ].join('\n'),
      });
      if (hostAccess) {
        const link = hostLinkName(runId);
        await mustRun('ip', ['link', 'add', link, 'type', 'veth', 'peer', 'name', 'host', 'netns', ns]);
        await mustRun('ip', ['-n', ns, 'link', 'set', 'host', 'master', br, 'up']);
        await mustRun('ip', ['-batch', '-'], {
          input: [`addr add 10.213.${octet}.254/24 dev ${link}`, `link set ${link} up`, `route add 10.214.${octet}.0/24 via ${gw}`, ''].join('\n'),
        });
      }
      const cluster = new Cluster({ runId, octet, iptables: t, hostAccess, preservesSourceIp, ipv6: options.ipv6 ?? false });
      pendingTeardowns.delete(partial);
      live.add(cluster);
      return cluster;
    } catch (err) {
      pendingTeardowns.delete(partial);
      teardownSync(partial);
      throw err;
    }
  }

  get pods(): readonly Pod[] {
    return [...this.#pods.values()];
  }

  get services(): readonly Service[] {
    return [...this.#services.values()];
  }

  pod(name: string): Pod {
    const p = this.#pods.get(name);
    if (!p) throw new HarnessError('E2E_BAD_NAME', `no pod ${JSON.stringify(name)} in cluster ${this.runId}`);
    return p;
  }

  /** Creates a pod: netns, veth to the bridge, address, default route, hosts file. */
  async addPod(name: string, options: { namespace?: string } = {}): Promise<Pod> {
    this.#checkLive();
    checkLabel('pod', name);
    const namespace = checkLabel('namespace', options.namespace ?? 'default');
    if (this.#pods.has(name)) throw new HarnessError('E2E_DUPLICATE', `pod ${name} already exists`);
    if (this.#nextPodHost > 253) throw new HarnessError('E2E_ADDRESSES_EXHAUSTED', `the pod range ${this.podCidr} is full (251 pods)`);
    const index = this.#nextPodHost++;
    const ip = `10.213.${this.#octet}.${index}`;
    const ip6 = this.podCidr6 === undefined ? undefined : this.podCidr6.replace('::/64', `::${index.toString(16)}`);
    const netns = podNetnsName(this.runId, name);
    const hostsDir = `/etc/netns/${netns}`;
    const pod = new Pod({ name, namespace, netns, ip, ...(ip6 === undefined ? {} : { ip6 }), iptables: this.iptables, hostsPath: `${hostsDir}/hosts` });
    this.#pods.set(name, pod);
    await mkdir(hostsDir, { recursive: true });
    await Promise.all([pod.writeHostsFile(renderHostsFile(pod, this.services)), writeFile(`${hostsDir}/resolv.conf`, POD_RESOLV_CONF)]);
    await mustRun('ip', ['netns', 'add', netns]);
    const veth = `v${index}`;
    await mustRun('ip', ['link', 'add', veth, 'netns', this.nodeNetns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await Promise.all([
      // Hairpin: a pod calling its own Service is DNATed back out of the port it came in on,
      // which a bridge refuses by default (kubelet sets the same flag on its veths).
      mustRun('ip', ['-n', this.nodeNetns, '-batch', '-'], {
        input: [`link set ${veth} master ${this.bridge}`, `link set ${veth} type bridge_slave hairpin on`, `link set ${veth} up`, ''].join('\n'),
      }),
      mustRun('ip', ['-n', netns, '-batch', '-'], {
        // nodad: the IPv6 address is usable at once, not "tentative" for a second of duplicate detection.
        input: ['link set lo up', `addr add ${ip}/24 dev eth0`, ...(ip6 === undefined ? [] : [`addr add ${ip6}/64 dev eth0 nodad`]), 'link set eth0 up', `route add default via ${this.gatewayIp}`, ''].join('\n'),
      }),
      // ...and the reply would then stay inside the pod, never un-DNATed: kube-proxy
      // masquerades this hairpin traffic, so does the node here.
      mustRun('ip', ['netns', 'exec', this.nodeNetns, this.iptables.iptables, '-w', '-t', 'nat', '-A', 'POSTROUTING', '-s', ip, '-d', ip, '-j', 'MASQUERADE']),
    ]);
    return pod;
  }

  /**
   * A Service: a VIP whose ports are DNATed (in the node, like kube-proxy) to the pod's
   * target ports, and hosts entries for its names in every pod.
   */
  async addService(spec: { name: string; namespace?: string; pod: Pod; ports: readonly ServicePort[] }): Promise<Service> {
    this.#checkLive();
    const name = checkLabel('service', spec.name);
    const namespace = checkLabel('namespace', spec.namespace ?? spec.pod.namespace);
    const key = `${namespace}/${name}`;
    if (this.#services.has(key)) throw new HarnessError('E2E_DUPLICATE', `service ${key} already exists`);
    if (this.#nextServiceHost > 254) throw new HarnessError('E2E_ADDRESSES_EXHAUSTED', `the service range ${this.serviceCidr} is full`);
    const vip = `10.214.${this.#octet}.${this.#nextServiceHost++}`;
    const service: Service = { name, namespace, vip, fqdn: `${name}.${namespace}.svc.cluster.local`, pod: spec.pod, ports: spec.ports };
    const rules = spec.ports.map((p) => `-A ${SERVICES_CHAIN} -d ${vip}/32 -p tcp --dport ${p.port} -j DNAT --to-destination ${spec.pod.ip}:${p.targetPort}`);
    await mustRun('ip', ['netns', 'exec', this.nodeNetns, this.iptables.restore, '-w', '--noflush'], { input: ['*nat', ...rules, 'COMMIT', ''].join('\n') });
    this.#services.set(key, service);
    await Promise.all(this.pods.map((p) => p.writeHostsFile(renderHostsFile(p, this.services))));
    return service;
  }

  /**
   * A directory to "mount" into pods (policy ConfigMap, SVID Secret, token): processes in
   * pods see the machine's filesystem, so a path is a mount. World-readable (mode 0755, unlike
   * mkdtemp's 0700) because the sidecar and the app run under non-root uids. Removed by destroy().
   */
  async volumeDir(name: string): Promise<string> {
    this.#checkLive();
    const dir = `${volumesRoot(this.runId)}/${checkLabel('volume', name)}`;
    await mkdir(dir, { recursive: true, mode: 0o755 });
    return dir;
  }

  /** The node's nat table (Service DNAT rules), for debugging. */
  nodeIptablesSave(): Promise<string> {
    return mustRun('ip', ['netns', 'exec', this.nodeNetns, this.iptables.save, '-t', 'nat']);
  }

  /** Stops every process (SIGTERM, SIGKILL after graceMs), deletes every namespace, link and file. Idempotent. */
  async destroy(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await Promise.all(this.pods.map((p) => p.stopAll({ graceMs: options.graceMs ?? 3_000 })));
    await Promise.all(this.pods.map((p) => deleteNetns(p.netns)));
    // Deleting the node removes the bridge and every veth (their peers go with them, the host's too).
    await deleteNetns(this.nodeNetns);
    await runCommand('ip', ['link', 'del', hostLinkName(this.runId)]).catch(() => undefined);
    await rm(volumesRoot(this.runId), { recursive: true, force: true });
    await rm(ownerFile(this.runId), { force: true });
    live.delete(this);
  }

  #checkLive(): void {
    if (this.#destroyed) throw new HarnessError('E2E_CLUSTER_DESTROYED', `cluster ${this.runId} was destroyed`);
  }

  /** What the exit hook needs to tear down without awaiting. */
  get teardownRecord(): TeardownRecord {
    return { runId: this.runId, nodeNetns: this.nodeNetns, podNetns: this.pods.map((p) => p.netns) };
  }
}

interface TeardownRecord {
  runId: string;
  nodeNetns: string;
  podNetns: string[];
}

const pendingTeardowns = new Set<TeardownRecord>();

/**
 * An octet whose ranges the machine does not route yet: with host access, 10.213.<o>.0/24 and
 * 10.214.<o>.0/24 get routes in the root namespace, so concurrent runs must not share one.
 */
async function freeOctet(): Promise<number> {
  const routes = (await runCommand('ip', ['-4', 'route', 'show'])).stdout;
  for (let attempt = 0; attempt < 64; attempt++) {
    const o = 1 + Math.floor(Math.random() * 250);
    if (!routes.includes(`10.213.${o}.`) && !routes.includes(`10.214.${o}.`)) return o;
  }
  throw new HarnessError('E2E_ADDRESSES_EXHAUSTED', 'no free 10.213.<o>.0/24 range on this machine');
}

function teardownSync(r: TeardownRecord): void {
  for (const ns of [...r.podNetns, r.nodeNetns]) {
    const pids = runCommandSync('ip', ['netns', 'pids', ns]).stdout.split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    runCommandSync('ip', ['netns', 'del', ns]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  runCommandSync('ip', ['link', 'del', hostLinkName(r.runId)]);
  rmSync(volumesRoot(r.runId), { recursive: true, force: true });
  rmSync(ownerFile(r.runId), { force: true });
}

// A test file that throws past its afterAll, or a worker that exits early, still leaves a
// clean machine; a SIGKILLed worker is handled by the next run's sweeper.
process.once('exit', () => {
  for (const c of live) teardownSync(c.teardownRecord);
  for (const r of pendingTeardowns) teardownSync(r);
});
