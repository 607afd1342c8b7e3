import { existsSync } from 'node:fs';
import { runCommandSync } from './command-runner.ts';
import { nodeBinary } from './node-binary.ts';

/** The iptables binaries that work inside a network namespace on this machine. */
export interface IptablesTools {
  /** `nf_tables` or `legacy`: whichever backend could install a nat rule in a fresh netns. */
  backend: 'nf_tables' | 'legacy';
  iptables: string;
  restore: string;
  save: string;
}

export type E2eAvailability = { ok: true; iptables: IptablesTools } | { ok: false; reason: string };

const PROBE_PREFIX = 'mlprobe-';
export const probeNetnsPattern = /^mlprobe-(\d+)$/;

let cached: E2eAvailability | undefined;

/**
 * Can network-namespace pods run here? Decided once per process, synchronously, because
 * vitest's `describe.skipIf` needs the answer at collection time (the e2e suite and
 * `meshlet demo --pods` both ask). Each check says exactly what is missing, so whoever is
 * refused learns how to make it run.
 */
export function e2eAvailability(): E2eAvailability {
  cached ??= probe();
  return cached;
}

function probe(): E2eAvailability {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'network-namespace pods need root (creating namespaces, veths and iptables rules needs CAP_NET_ADMIN)' };
  if (!existsSync(nodeBinary)) return { ok: false, reason: `Node 24 binary ${nodeBinary} is missing (run npm ci)` };
  // ip6tables-restore: the injected init container (`meshlet iptables apply`) installs IPv6 rules too, and fails without them.
  for (const [bin, pkg] of [['ip', 'iproute2'], ['setpriv', 'util-linux'], ['iptables', 'iptables'], ['ip6tables-restore', 'iptables']] as const) {
    if (runCommandSync('sh', ['-c', `command -v ${bin}`]).code !== 0) return { ok: false, reason: `\`${bin}\` not found (apt-get install ${pkg})` };
  }
  const ns = `${PROBE_PREFIX}${process.pid}`;
  const add = runCommandSync('ip', ['netns', 'add', ns]);
  if (add.code !== 0) return { ok: false, reason: `cannot create a network namespace: ${add.stderr.trim()}` };
  try {
    const bridge = runCommandSync('ip', ['-n', ns, 'link', 'add', 'probebr', 'type', 'bridge']);
    if (bridge.code !== 0) return { ok: false, reason: `cannot create a bridge in a network namespace: ${bridge.stderr.trim()}` };
    const veth = runCommandSync('ip', ['-n', ns, 'link', 'add', 'probea', 'type', 'veth', 'peer', 'name', 'probeb']);
    if (veth.code !== 0) return { ok: false, reason: `cannot create a veth pair in a network namespace: ${veth.stderr.trim()}` };
    const failures: string[] = [];
    for (const tools of candidates()) {
      const why = tryIptables(ns, tools);
      if (why === undefined) return { ok: true, iptables: tools };
      failures.push(`${tools.iptables}: ${why}`);
    }
    return { ok: false, reason: `no iptables backend can install nat REDIRECT + owner rules in a network namespace (${failures.join('; ')})` };
  } finally {
    runCommandSync('ip', ['netns', 'del', ns]);
  }
}

function candidates(): IptablesTools[] {
  const found: IptablesTools[] = [];
  // The distribution's default first (what the injected init container image would run), then legacy.
  const version = runCommandSync('iptables', ['--version']).stdout;
  found.push({ backend: version.includes('legacy') ? 'legacy' : 'nf_tables', iptables: 'iptables', restore: 'iptables-restore', save: 'iptables-save' });
  if (runCommandSync('sh', ['-c', 'command -v iptables-legacy']).code === 0 && !version.includes('legacy')) {
    found.push({ backend: 'legacy', iptables: 'iptables-legacy', restore: 'iptables-legacy-restore', save: 'iptables-legacy-save' });
  }
  return found;
}

/** The rule shapes interception needs: nat REDIRECT and the owner match. Returns why it failed, or undefined. */
function tryIptables(ns: string, tools: IptablesTools): string | undefined {
  const script = ['*nat', ':OUTPUT ACCEPT [0:0]', '-A OUTPUT -p tcp -m owner --uid-owner 1 -j RETURN', '-A OUTPUT -p tcp --dport 1 -j REDIRECT --to-ports 2', 'COMMIT', ''].join('\n');
  const restore = runCommandSync('ip', ['netns', 'exec', ns, tools.restore], { input: script });
  if (restore.code !== 0) return restore.stderr.trim() || `exit ${restore.code}`;
  const save = runCommandSync('ip', ['netns', 'exec', ns, tools.save, '-t', 'nat']);
  if (save.code !== 0) return save.stderr.trim() || `exit ${save.code}`;
  if (!save.stdout.includes('REDIRECT') || !save.stdout.includes('--uid-owner 1')) return 'rules did not read back';
  return undefined;
}
