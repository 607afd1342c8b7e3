import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN_MAX_CONNECTIONS, adminDescriptorDemand } from '../../../src/data-plane/admin/admin-server.ts';
import { SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { IDENTITY_ENV, readIdentityConfig } from '../../../src/control-plane/identity-service/config.ts';
import { IDENTITY_CONNECTION_DEFAULTS } from '../../../src/control-plane/identity-service/server.ts';
import { DEFAULT_MAX_CONNECTIONS } from '../../../src/common/net/connection-guard.ts';
import { DescriptorBudgetError, describeClamp, fitDescriptorBudget, readOpenFilesLimit, type DescriptorDemand } from '../../../src/common/net/descriptor-budget.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A /proc/<pid>/limits file as Linux writes it. */
function limitsFile(openFiles: string): string {
  const path = join(dir, `limits-${openFiles}`);
  writeFileSync(
    path,
    [
      'Limit                     Soft Limit           Hard Limit           Units     ',
      'Max processes             63704                63704                processes ',
      `Max open files            ${openFiles.padEnd(20)} ${openFiles.padEnd(20)} files     `,
      'Max locked memory         8388608              8388608              bytes     ',
    ].join('\n'),
  );
  return path;
}

const sidecar: DescriptorDemand[] = [
  { listener: 'inbound', ports: 2, maxConnections: 1024, perConnection: 2, clampable: true },
  { listener: 'outbound', ports: 1, maxConnections: 1024, perConnection: 2, clampable: true },
  { listener: 'catch_all', ports: 1, maxConnections: 64, perConnection: 1, clampable: true },
  { listener: 'admin', ports: 1, maxConnections: 64, perConnection: 2, clampable: false },
];

describe('the open-files limit', () => {
  it('is read from /proc/self/limits (the soft column)', () => {
    expect(readOpenFilesLimit(limitsFile('4096'))).toBe(4096);
  });

  it('is unknown when unlimited or unreadable (not Linux): nothing is checked', () => {
    expect(readOpenFilesLimit(limitsFile('unlimited'))).toBeUndefined();
    expect(readOpenFilesLimit(join(dir, 'absent'))).toBeUndefined();
    expect(fitDescriptorBudget(sidecar, 256, undefined).clamped).toBe(false);
  });
});

describe('fitting connection caps to the open-files limit', () => {
  it('leaves caps that fit alone', () => {
    const b = fitDescriptorBudget(sidecar, 256, 1_048_576);
    expect(b.clamped).toBe(false);
    expect(b.demand).toBe(2 * 1024 * 2 + 1024 * 2 + 64 + 64 * 2 + 256);
    expect([...b.caps.values()]).toEqual([1024, 1024, 64, 64]);
  });

  it('lowers the clampable caps in proportion so that they, the admin port and the reserve fit; the admin cap stays', () => {
    const b = fitDescriptorBudget(sidecar, 256, 1024);
    expect(b.clamped).toBe(true);
    expect(b.caps.get('admin')).toBe(64);
    const used = b.caps.get('inbound')! * 2 * 2 + b.caps.get('outbound')! * 2 + b.caps.get('catch_all')! + 64 * 2 + 256;
    expect(used).toBeLessThanOrEqual(1024);
    expect(b.caps.get('inbound')).toBe(b.caps.get('outbound'));
    expect(describeClamp(sidecar, b)).toBe(`inbound 1024 -> ${b.caps.get('inbound')}, outbound 1024 -> ${b.caps.get('outbound')}, catch_all 64 -> ${b.caps.get('catch_all')}`);
  });

  it('never lowers a cap below one connection', () => {
    const b = fitDescriptorBudget(sidecar, 256, 256 + 128 + 7);
    expect([b.caps.get('inbound'), b.caps.get('outbound'), b.caps.get('catch_all')]).toEqual([1, 1, 1]);
  });

  it('refuses a limit that cannot hold the reserve, the admin port and one connection per listener', () => {
    const fit = () => fitDescriptorBudget(sidecar, 256, 300);
    expect(fit).toThrow(DescriptorBudgetError);
    expect(fit).toThrow(/^the open-files limit \(RLIMIT_NOFILE\) is 300: too low to keep 256 descriptors in reserve, 128 for the fixed listeners and one connection per listener \(391 needed\)/);
    try {
      fit();
    } catch (err) {
      expect((err as DescriptorBudgetError).code).toBe('MESHLET_FD_LIMIT_TOO_LOW');
    }
  });
});

describe('the admin port\'s demand (one helper for the identity service and the injector)', () => {
  it('is one port at ADMIN_MAX_CONNECTIONS, one descriptor per connection, never lowered', () => {
    expect(adminDescriptorDemand()).toEqual({ listener: 'admin', ports: 1, maxConnections: ADMIN_MAX_CONNECTIONS, perConnection: 1, clampable: false });
  });

  it('holds two descriptors per connection when it forwards app probes, with the cap asked for', () => {
    expect(adminDescriptorDemand({ maxConnections: 10, forwardsAppProbes: true })).toEqual({ listener: 'admin', ports: 1, maxConnections: 10, perConnection: 2, clampable: false });
  });

  it('keeps its cap when the other listener is lowered', () => {
    const b = fitDescriptorBudget([{ listener: 'identity', ports: 1, maxConnections: 4096, perConnection: 1, clampable: true }, adminDescriptorDemand()], 256, 1024);
    expect(b.clamped).toBe(true);
    expect(b.caps.get('admin')).toBe(ADMIN_MAX_CONNECTIONS);
    expect(b.caps.get('identity')).toBe(1024 - 256 - ADMIN_MAX_CONNECTIONS);
  });
});

describe('documented defaults are the defaults the code applies', () => {
  it('sidecar: the listener caps', () => {
    expect(SIDECAR_ENV.maxInboundConnections.default).toBe(String(DEFAULT_MAX_CONNECTIONS));
    expect(SIDECAR_ENV.maxOutboundConnections.default).toBe(String(DEFAULT_MAX_CONNECTIONS));
    expect(SIDECAR_ENV.maxAdminConnections.default).toBe(String(ADMIN_MAX_CONNECTIONS));
  });

  it('identity service: the environment defaults and the server defaults agree', () => {
    expect([IDENTITY_ENV.maxConnections.default, IDENTITY_ENV.handshakeTimeoutMs.default, IDENTITY_ENV.idleTimeoutMs.default]).toEqual(['4096', '10s', '5m']);
    const c = readIdentityConfig({});
    expect({ maxConnections: c.maxConnections, handshakeTimeoutMs: c.handshakeTimeoutMs, idleTimeoutMs: c.idleTimeoutMs }).toEqual(IDENTITY_CONNECTION_DEFAULTS);
  });
});
