import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/common/config/env.ts';
import { readInterceptionConfig } from '../../../src/control-plane/injector/iptables/env.ts';
import { renderIptablesScript } from '../../../src/control-plane/injector/iptables/rules.ts';
import type { IpFamily } from '../../../src/control-plane/injector/iptables/ip-cidr.ts';
import { INJECTOR_FIXTURES } from './golden-support.ts';

/** Golden text: the exact scripts a pod's init container pipes to iptables-restore (`<case>.rules`) and ip6tables-restore (`<case>.ip6.rules`). */
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const CASES: Record<string, Record<string, string>> = {
  // No declared port: every inbound TCP goes to the catch-all, all outbound TCP to 15001.
  'no-ports': {},
  'http-and-grpc': { MESHLET_INBOUND_PORTS: '8080:15100/http,9090:15101/grpc' },
  'every-skip': {
    MESHLET_INBOUND_PORTS: '8080/http,7000/tcp',
    MESHLET_SKIP_INBOUND_PORTS: '9100',
    MESHLET_SKIP_OUTBOUND_PORTS: '5432,6379',
    MESHLET_SKIP_OUTBOUND_CIDRS: '169.254.169.254/32,10.96.0.0/12,fd00:ec2::254/128',
    MESHLET_PROXY_UID: '2020',
  },
};

const FILE_SUFFIX: Record<IpFamily, string> = { ipv4: '.rules', ipv6: '.ip6.rules' };

describe('iptables rules (golden text)', () => {
  for (const [name, env] of Object.entries(CASES)) {
    for (const family of ['ipv4', 'ipv6'] as const) {
      it(`${name} (${family})`, () => {
        const text = renderIptablesScript(readInterceptionConfig(env), family);
        const file = join(INJECTOR_FIXTURES, 'iptables', `${name}${FILE_SUFFIX[family]}`);
        if (UPDATE) writeFileSync(file, text);
        expect(existsSync(file), `missing ${file}: run with UPDATE_GOLDEN=1 and review it`).toBe(true);
        expect(text).toBe(readFileSync(file, 'utf8'));
      });
    }
  }

  it('ipv6-interception-bypass: the IPv6 rules mirror the IPv4 ones; only loopback and the skipped CIDRs differ', () => {
    const config = readInterceptionConfig(CASES['every-skip']!);
    const rules = (family: IpFamily) => renderIptablesScript(config, family).split('\n').filter((l) => l.startsWith('-A ') || l.startsWith(':'));
    const v4 = rules('ipv4');
    const v6 = rules('ipv6');
    const familyOnly = (l: string) => / -d /.test(l);
    expect(v6.filter((l) => !familyOnly(l))).toEqual(v4.filter((l) => !familyOnly(l)));
    expect(v4.filter(familyOnly)).toEqual(['-A MESHLET_OUTBOUND -d 127.0.0.0/8 -j RETURN', '-A MESHLET_OUTBOUND -d 169.254.169.254/32 -j RETURN', '-A MESHLET_OUTBOUND -d 10.96.0.0/12 -j RETURN']);
    expect(v6.filter(familyOnly)).toEqual(['-A MESHLET_OUTBOUND -d ::1/128 -j RETURN', '-A MESHLET_OUTBOUND -d fd00:ec2::254/128 -j RETURN']);
    expect(renderIptablesScript(config)).toBe(renderIptablesScript(config, 'ipv4'));
  });

  it.each([
    ['fd00:ec2::254/128', true],
    ['2001:db8::/32', true],
    ['::/0', true],
    ['10.0.0.0/8', true],
    ['fe80::1%eth0/64', false],
    ['fd00::/129', false],
    ['fd00::', false],
    ['fd00:::1/64', false],
    ['010.0.0.0/8', false],
  ])('MESHLET_SKIP_OUTBOUND_CIDRS=%s valid: %s', (cidr, valid) => {
    const read = () => readInterceptionConfig({ MESHLET_SKIP_OUTBOUND_CIDRS: cidr });
    if (valid) expect(read().skipOutboundCidrs).toEqual([cidr]);
    else expect(read).toThrow(/is not an IPv4 CIDR \(a\.b\.c\.d\/0-32\) or an IPv6 CIDR/);
  });

  it('never exempts the outbound listener from inbound interception (no relay from outside)', () => {
    const text = renderIptablesScript(readInterceptionConfig(CASES['http-and-grpc']!));
    expect(text).not.toContain('--dport 15001 -j RETURN');
    expect(text).toContain('-A MESHLET_INBOUND -p tcp --dport 15020 -j RETURN');
    expect(text.split('\n').filter((l) => l.startsWith('-A MESHLET_INBOUND')).at(-1)).toBe('-A MESHLET_INBOUND -p tcp -j REDIRECT --to-ports 15006');
    expect(text.split('\n').filter((l) => l.startsWith('-A MESHLET_OUTBOUND')).at(0)).toBe('-A MESHLET_OUTBOUND -m owner --uid-owner 2020 -j RETURN');
  });

  it('gives unnumbered inbound entries the same listen ports as the sidecar (15100 + index)', () => {
    expect(readInterceptionConfig({ MESHLET_INBOUND_PORTS: '8080,9090/grpc' }).inbound).toEqual([
      { appPort: 8080, listenPort: 15100 },
      { appPort: 9090, listenPort: 15101 },
    ]);
  });

  it('reports every bad variable at once', () => {
    let error: unknown;
    try {
      readInterceptionConfig({ MESHLET_INBOUND_PORTS: '15020/http', MESHLET_PROXY_UID: '0', MESHLET_SKIP_OUTBOUND_CIDRS: '10.0.0.0', MESHLET_SKIP_OUTBOUND_PORTS: '0' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.map((p) => p.variable).sort();
    expect(problems).toEqual(['MESHLET_INBOUND_PORTS', 'MESHLET_PROXY_UID', 'MESHLET_SKIP_OUTBOUND_CIDRS', 'MESHLET_SKIP_OUTBOUND_PORTS']);
    expect((error as ConfigError).message).toContain('root traffic would bypass the sidecar');
  });
});
