import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/env.ts';
import { readInterceptionConfig } from '../../../injector/iptables/env.ts';
import { renderIptablesScript } from '../../../injector/iptables/rules.ts';
import { INJECTOR_FIXTURES } from './golden-support.ts';

/** Golden text: the exact script a pod's init container pipes to iptables-restore. */
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const CASES: Record<string, Record<string, string>> = {
  // No declared port: every inbound TCP goes to the catch-all, all outbound TCP to 15001.
  'no-ports': {},
  'http-and-grpc': { MESHLET_INBOUND_PORTS: '8080:15100/http,9090:15101/grpc' },
  'every-skip': {
    MESHLET_INBOUND_PORTS: '8080/http,7000/tcp',
    MESHLET_SKIP_INBOUND_PORTS: '9100',
    MESHLET_SKIP_OUTBOUND_PORTS: '5432,6379',
    MESHLET_SKIP_OUTBOUND_CIDRS: '169.254.169.254/32,10.96.0.0/12',
    MESHLET_PROXY_UID: '2020',
  },
};

describe('iptables rules (golden text)', () => {
  for (const [name, env] of Object.entries(CASES)) {
    it(name, () => {
      const text = renderIptablesScript(readInterceptionConfig(env));
      const file = join(INJECTOR_FIXTURES, 'iptables', `${name}.rules`);
      if (UPDATE) writeFileSync(file, text);
      expect(existsSync(file), `missing ${file}: run with UPDATE_GOLDEN=1 and review it`).toBe(true);
      expect(text).toBe(readFileSync(file, 'utf8'));
    });
  }

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
