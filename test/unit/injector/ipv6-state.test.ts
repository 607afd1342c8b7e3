import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readIpv6State } from '../../../src/control-plane/injector/iptables/ipv6-state.ts';

/**
 * What `meshlet iptables apply` decides about IPv6, from a /proc tree laid out as the kernel
 * does (the real thing runs in network namespaces in test/integration/injector/iptables-apply.test.ts).
 */
const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

function proc(shape: { ifInet6?: boolean; disableIpv6?: Record<string, string> }): string {
  const root = mkdtempSync(join(tmpdir(), 'meshlet-proc-'));
  roots.push(root);
  mkdirSync(join(root, 'net'), { recursive: true });
  if (shape.ifInet6) writeFileSync(join(root, 'net', 'if_inet6'), '');
  for (const [iface, value] of Object.entries(shape.disableIpv6 ?? {})) {
    mkdirSync(join(root, 'sys/net/ipv6/conf', iface), { recursive: true });
    writeFileSync(join(root, 'sys/net/ipv6/conf', iface, 'disable_ipv6'), `${value}\n`);
  }
  return root;
}

describe('IPv6 in the pod (readIpv6State)', () => {
  it('absent when the kernel has no IPv6 (no /proc/net/if_inet6): nothing to intercept', () => {
    const root = proc({ ifInet6: false });
    expect(readIpv6State(root)).toEqual({ state: 'absent', detail: `the kernel has no IPv6 (${root}/net/if_inet6 does not exist)` });
  });

  it('disabled when every interface has disable_ipv6=1 (all/default do not count)', () => {
    const state = readIpv6State(proc({ ifInet6: true, disableIpv6: { all: '0', default: '0', lo: '1', eth0: '1' } }));
    expect(state).toEqual({ state: 'disabled', detail: 'IPv6 is disabled on every interface of the pod (eth0, lo: net.ipv6.conf.<interface>.disable_ipv6=1)' });
  });

  it('enabled as soon as one interface carries IPv6', () => {
    expect(readIpv6State(proc({ ifInet6: true, disableIpv6: { all: '1', lo: '1', eth0: '0' } }))).toEqual({ state: 'enabled', detail: 'IPv6 is enabled on eth0' });
  });

  it('enabled (fail closed) when the per-interface settings cannot be read', () => {
    expect(readIpv6State(proc({ ifInet6: true })).state).toBe('enabled');
  });
});
