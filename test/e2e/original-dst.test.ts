// Issue 14 item 1, "Original destination": with REAL iptables in a network namespace, a
// connection that the nat table REDIRECTs to a local listener still tells that listener where
// it was going. The listener (apps/original-dst-echo.ts) reads originalDestination(socket)
// with the native addon (docs/original-destination.md) and must see the address and port the
// client dialled (…:8080), not its own port. IPv4 (SO_ORIGINAL_DST), IPv6
// (IP6T_SO_ORIGINAL_DST), and an IPv4 connection accepted by a dual-stack `::` listener (an
// IPv4-mapped socket, asked as IPv4). Then the two "not redirected" answers, each pinned in a
// namespace whose rules are known: conntrack running (the pod with the nat rules) gives the
// unchanged destination; a pod with no rules at all (conntrack never started there) gives null.
// Needs what every e2e suite needs (root, iproute2, iptables) and the built addon; the IPv6
// case also needs a kernel with IPv6 and ip6tables, and is skipped with the reason otherwise.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { originalDstAvailable } from '../../src/data-plane/proxy/original-dst/original-dst.ts';
import { Cluster, e2eAvailability, e2eSkipped, mustRun, type Pod } from './harness/index.ts';

const LISTENER = 'test/e2e/apps/original-dst-echo.ts';
const CALLER = 'test/e2e/harness/tools/tcp-call.ts';
/** The listener's ports, where the REDIRECTs send connections: an IPv4-only one and a dual-stack (::) one. */
const PORT_V4 = 15101;
const PORT_DUAL = 15102;
/** What the clients dial: addresses no host has, on the port an app would call. */
const DIALLED_PORT = 8080;
const DIALLED_V4 = '10.77.0.10';
const DIALLED_V4_TO_DUAL = '10.77.0.11';

function addonMissing(): string | undefined {
  const a = originalDstAvailable();
  return a.ok ? undefined : a.reason;
}

function skipped(suite: string): boolean {
  if (e2eSkipped(suite)) return true;
  const why = addonMissing();
  if (why) console.warn(`[e2e] SKIPPED ${suite}: ${why}`);
  return why !== undefined;
}

/** Why the IPv6 case cannot run here; undefined when it can. */
function ipv6Missing(): string | undefined {
  if (!existsSync('/proc/net/if_inet6')) return 'the kernel has no IPv6 (/proc/net/if_inet6 does not exist)';
  for (const bin of ['ip6tables', 'ip6tables-restore']) {
    if (!['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((dir) => existsSync(`${dir}/${bin}`))) return `\`${bin}\` not found (apt-get install iptables)`;
  }
  return undefined;
}

interface Answer {
  local?: { address: string; port: number };
  original?: { address: string; port: number; family: 4 | 6 } | null;
  error?: string;
  message?: string;
}

/** Dials each HOST:PORT from inside `pod` (one process for all) and returns what the listener answered for each. */
async function dialFrom(pod: Pod, targets: string[]): Promise<Map<string, Answer>> {
  const r = await pod.execNode(CALLER, targets);
  const answers = new Map<string, Answer>();
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf(' -> ');
    if (i < 0) continue;
    const text = line.slice(i + 4);
    answers.set(line.slice(0, i), text.startsWith('{') ? (JSON.parse(text) as Answer) : { error: text });
  }
  expect([...answers.keys()], `${r.stdout}${r.stderr}`).toEqual(targets);
  return answers;
}

const IPV6_MISSING = ipv6Missing();

describe.skipIf(skipped('original destination e2e (iptables REDIRECT in a network namespace)'))('original destination (issue 14 item 1): real REDIRECTs in a pod', () => {
  let cluster: Cluster;
  let redirected: Pod;
  let plain: Pod;
  let dialledV6: string;

  beforeAll(async () => {
    cluster = await Cluster.create({ hostAccess: false, ipv6: IPV6_MISSING === undefined });
    redirected = await cluster.addPod('redirected');
    plain = await cluster.addPod('plain');
    const tools = e2eAvailability();
    if (!tools.ok) throw new Error(tools.reason);
    // What a sidecar's interception does for outbound calls: the nat OUTPUT chain sends them to
    // a local port (here only the addresses this test dials, so nothing else is touched).
    await redirected.applyIptables(
      [
        '*nat',
        ':PREROUTING ACCEPT [0:0]',
        ':INPUT ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':POSTROUTING ACCEPT [0:0]',
        `-A OUTPUT -p tcp -d ${DIALLED_V4} --dport ${DIALLED_PORT} -j REDIRECT --to-ports ${PORT_V4}`,
        `-A OUTPUT -p tcp -d ${DIALLED_V4_TO_DUAL} --dport ${DIALLED_PORT} -j REDIRECT --to-ports ${PORT_DUAL}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
    if (IPV6_MISSING === undefined) {
      // Pods have no IPv6 router: an address in the pod's own /64 is routable (on eth0), and
      // nat OUTPUT rewrites it before anything is sent. ::beef is no pod's address.
      dialledV6 = redirected.ip6!.replace(/:[0-9a-f]*$/, ':beef');
      const restore6 = tools.iptables.restore.replace(/^iptables/, 'ip6tables');
      const rules6 = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', `-A OUTPUT -p tcp -d ${dialledV6} --dport ${DIALLED_PORT} -j REDIRECT --to-ports ${PORT_DUAL}`, 'COMMIT', ''].join('\n');
      await mustRun('ip', ['netns', 'exec', redirected.netns, restore6, '-w'], { input: rules6 });
    }
    for (const pod of [redirected, plain]) {
      const listener = pod.spawnNode(LISTENER, [`0.0.0.0:${PORT_V4}`, `:::${PORT_DUAL}`], { label: 'original-dst-echo' });
      await listener.waitForPort(PORT_V4);
      await listener.waitForPort(PORT_DUAL);
    }
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('IPv4: a connection REDIRECTed to the listener reports the address and port the client dialled', async () => {
    const target = `${DIALLED_V4}:${DIALLED_PORT}`;
    const a = (await dialFrom(redirected, [target])).get(target)!;
    // It really landed on the listener's own port, on loopback (REDIRECT in OUTPUT maps to 127.0.0.1) …
    expect(a.local).toEqual({ address: '127.0.0.1', port: PORT_V4 });
    // … and still knows where it was going.
    expect(a.original).toEqual({ address: DIALLED_V4, port: DIALLED_PORT, family: 4 });
  });

  it('IPv4 to a dual-stack (::) listener: the IPv4-mapped socket is asked as IPv4 and answers family 4', async () => {
    const target = `${DIALLED_V4_TO_DUAL}:${DIALLED_PORT}`;
    const a = (await dialFrom(redirected, [target])).get(target)!;
    expect(a.local).toEqual({ address: '::ffff:127.0.0.1', port: PORT_DUAL });
    expect(a.original).toEqual({ address: DIALLED_V4_TO_DUAL, port: DIALLED_PORT, family: 4 });
  });

  it.skipIf(IPV6_MISSING !== undefined)(`IPv6: an ip6tables REDIRECT reports the IPv6 address and port dialled (IP6T_SO_ORIGINAL_DST)${IPV6_MISSING ? ` [skipped: ${IPV6_MISSING}]` : ''}`, async () => {
    const target = `${dialledV6}:${DIALLED_PORT}`;
    const a = (await dialFrom(redirected, [target])).get(target)!;
    expect(a.local).toEqual({ address: '::1', port: PORT_DUAL });
    expect(a.original).toEqual({ address: dialledV6, port: DIALLED_PORT, family: 6 });
  });

  it('not redirected, in a namespace where conntrack runs (it has nat rules): the destination, unchanged', async () => {
    const targets = [`127.0.0.1:${PORT_V4}`, `${redirected.ip}:${PORT_V4}`];
    const answers = await dialFrom(redirected, targets);
    expect(answers.get(targets[0]!)?.original).toEqual({ address: '127.0.0.1', port: PORT_V4, family: 4 });
    expect(answers.get(targets[1]!)?.original).toEqual({ address: redirected.ip, port: PORT_V4, family: 4 });
  });

  it('not redirected, in a namespace with no rules (conntrack never started there): null, the kernel says ENOENT', async () => {
    const targets = [`127.0.0.1:${PORT_V4}`, `${plain.ip}:${PORT_V4}`];
    if (IPV6_MISSING === undefined) targets.push(`::1:${PORT_DUAL}`);
    const answers = await dialFrom(plain, targets);
    for (const t of targets) expect(answers.get(t), t).toMatchObject({ original: null });
  });
});
