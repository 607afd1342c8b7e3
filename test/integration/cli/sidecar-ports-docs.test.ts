// Issue 17: running several sidecars on one host needs every default port overridden, and `0`
// is refused for the catch-all. docs/proxy.md "Several sidecars on one host" says which ports,
// with which defaults, shows two sidecars' environments, and shows the refusal of 0 with its
// reason: each is checked here against what the sidecar really does.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { INBOUND_LISTEN_BASE, readSidecarConfig, SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { ConfigError } from '../../../src/common/config/env.ts';

const BIN = fileURLToPath(new URL('../../../bin/meshlet.js', import.meta.url));
const doc = readFileSync(new URL('../../../docs/proxy.md', import.meta.url), 'utf8');
const section = (() => {
  const start = doc.indexOf('## Several sidecars on one host');
  expect(start).toBeGreaterThan(-1);
  return doc.slice(start, doc.indexOf('\n## ', start + 1));
})();

function runSidecar(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'sidecar'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every port a sidecar configuration binds. */
function boundPorts(env: Record<string, string>): number[] {
  const c = readSidecarConfig(env);
  return [c.outboundPort, c.inboundCatchAllPort, c.adminPort, ...c.inboundPorts.map((p) => p.listenPort), ...c.outboundTcp.map((m) => m.listenPort)];
}

describe('docs/proxy.md "Several sidecars on one host"', () => {
  it('lists every port variable with the default the sidecar applies', () => {
    const rows = new Map<string, string>();
    for (const line of section.split('\n')) {
      const m = /^\| `(MESHLET_[A-Z_]+)` \| ([^|]+) \|/.exec(line);
      if (m) rows.set(m[1]!, m[2]!.trim());
    }
    expect(rows.get(SIDECAR_ENV.outboundPort.name)).toBe(`\`${SIDECAR_ENV.outboundPort.default}\``);
    expect(rows.get(SIDECAR_ENV.inboundCatchAllPort.name)).toBe(`\`${SIDECAR_ENV.inboundCatchAllPort.default}\``);
    expect(rows.get(SIDECAR_ENV.adminPort.name)).toBe(`\`${SIDECAR_ENV.adminPort.default}\``);
    expect(rows.get(SIDECAR_ENV.inboundPorts.name)).toBe(`listen ports ${INBOUND_LISTEN_BASE}, ${INBOUND_LISTEN_BASE + 1}, …`);
    expect(rows.has(SIDECAR_ENV.outboundTcp.name)).toBe(true);
    // Every port a sidecar can bind is in the table: two default configurations share all of them.
    const minimal = { MESHLET_NAMESPACE: 'a', MESHLET_SERVICE_ACCOUNT: 'b', MESHLET_INBOUND_PORTS: '8080', MESHLET_OUTBOUND_TCP: '7000=db:5432' };
    expect(boundPorts(minimal).sort()).toEqual([...rows.keys()].flatMap((name) => {
      if (name === SIDECAR_ENV.inboundPorts.name) return [INBOUND_LISTEN_BASE];
      if (name === SIDECAR_ENV.outboundTcp.name) return [7000];
      return [Number((Object.values(SIDECAR_ENV) as { name: string; default?: string }[]).find((v) => v.name === name)!.default)];
    }).sort());
  });

  it('its two sidecars\' environments are valid and bind no port twice', () => {
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBeDefined();
    const sidecars = block!.split(/^# .*$/m).map((s) => s.trim()).filter((s) => s !== '');
    expect(sidecars).toHaveLength(2);
    const envs = sidecars.map((s) => Object.fromEntries([...s.replaceAll('\\\n', ' ').matchAll(/\b(MESHLET_[A-Z_]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])));
    const ports = envs.map(boundPorts);
    expect(new Set(ports.flat()).size).toBe(ports.flat().length);
    expect(readSidecarConfig(envs[1]!).destinationAddresses.get('orders:8080')).toEqual({ host: '127.0.0.1', port: readSidecarConfig(envs[0]!).inboundPorts[0]!.listenPort });
  });

  it('MESHLET_INBOUND_CATCHALL_PORT=0 is refused with the reason the docs show: one line per problem, exit 1', async () => {
    const shown = /```console\n\$ MESHLET_INBOUND_CATCHALL_PORT=0 … meshlet sidecar\n([\s\S]*?)```/.exec(section)?.[1];
    expect(shown).toBeDefined();
    const r = await runSidecar({ MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders', MESHLET_INBOUND_CATCHALL_PORT: '0' });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(shown);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('0 is refused for the other ports too (the contract names concrete ports), and a free port is fine', () => {
    const base = { MESHLET_NAMESPACE: 'a', MESHLET_SERVICE_ACCOUNT: 'b' };
    for (const name of [SIDECAR_ENV.outboundPort.name, SIDECAR_ENV.adminPort.name]) {
      expect(() => readSidecarConfig({ ...base, [name]: '0' })).toThrow(ConfigError);
    }
    expect(() => readSidecarConfig({ ...base, MESHLET_INBOUND_PORTS: '8080:0' })).toThrow(ConfigError);
    expect(readSidecarConfig({ ...base, MESHLET_INBOUND_CATCHALL_PORT: '16006' }).inboundCatchAllPort).toBe(16006);
  });
});
