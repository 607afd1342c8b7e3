import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readSidecarConfig, SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { DEFAULT_PROXY_SETTINGS, resolveProxySettings } from '../../../src/data-plane/proxy/config.ts';

// The proxy's timeouts and limits have one default each: DEFAULT_PROXY_SETTINGS. The sidecar's
// variables (README "Sidecar configuration reference") and docs/proxy.md's settings table must
// say the same. Before this, MESHLET_DRAIN_TIMEOUT defaulted to 20s while timeouts.drainMs was
// 25000, and the two docs disagreed.
const minimal = { MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders' };

describe('one default for each proxy timeout and limit', () => {
  it('drain: 20 s, as the README documents MESHLET_DRAIN_TIMEOUT, in the sidecar and the proxy library alike', () => {
    expect(SIDECAR_ENV.drainTimeoutMs.default).toBe('20s');
    expect(readSidecarConfig(minimal).drainTimeoutMs).toBe(20_000);
    expect(resolveProxySettings().timeouts.drainMs).toBe(20_000);
  });

  it('every sidecar timeout and limit variable defaults to DEFAULT_PROXY_SETTINGS', () => {
    const c = readSidecarConfig(minimal);
    const { timeouts: t, limits: l } = DEFAULT_PROXY_SETTINGS;
    // maxInFlightPerCaller has no default of its own: unset, it is half of maxConnectionsPerUpstream.
    const { maxInFlightPerCaller: _derived, ...limitsWithoutDerived } = l;
    expect(c.maxInFlightPerCaller).toBeUndefined();
    expect({
      connectMs: c.connectTimeoutMs,
      tlsHandshakeMs: c.tlsHandshakeTimeoutMs,
      requestHeadersMs: c.requestHeadersTimeoutMs,
      idleMs: c.idleTimeoutMs,
      drainMs: c.drainTimeoutMs,
      queueWaitMs: c.upstreamQueueTimeoutMs,
      streamIdleMs: c.streamIdleTimeoutMs,
      protocolDetectMs: c.protocolDetectTimeoutMs,
    }).toEqual(t);
    expect({
      maxHeaderBytes: c.maxHeaderBytes,
      maxHeaderCount: c.maxHeaders,
      maxConnectionsPerUpstream: c.maxConnectionsPerUpstream,
      maxPendingPerUpstream: c.maxPendingPerUpstream,
      h2MaxConcurrentStreams: c.h2MaxConcurrentStreams,
      h2MaxPrematureResets: c.h2MaxPrematureResets,
    }).toEqual(limitsWithoutDerived);
  });

  it('docs/proxy.md shows DEFAULT_PROXY_SETTINGS', () => {
    const doc = readFileSync(new URL('../../../docs/proxy.md', import.meta.url), 'utf8');
    const documented = new Map<string, string>();
    for (const line of doc.split('\n')) {
      const m = /^\| `((?:timeouts|limits)\.\w+)` \| ([^|]+) \|/.exec(line);
      if (m) documented.set(m[1]!, m[2]!.trim());
    }
    for (const [section, values] of Object.entries(DEFAULT_PROXY_SETTINGS)) {
      for (const [key, value] of Object.entries(values as Record<string, number>)) {
        const row = documented.get(`${section}.${key}`);
        expect(row, `${section}.${key} missing from docs/proxy.md`).toBeDefined();
        // maxInFlightPerCaller is documented as "half of maxConnectionsPerUpstream (128)".
        expect(/\d+/.exec(row!.replace(/^half of `maxConnectionsPerUpstream` /, ''))?.[0], `${section}.${key}`).toBe(String(value));
      }
    }
  });
});
