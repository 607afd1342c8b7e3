// What the outbound sidecar must do with each discovery answer
// (src/data-plane/discovery/decide.ts): every row of docs/discovery.md's table, and the
// client's checks of the service's answers (discovery-client.ts toResolution).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decide } from '../../../src/data-plane/discovery/decide.ts';
import { toResolution } from '../../../src/data-plane/discovery/discovery-client.ts';
import type { Resolution } from '../../../src/data-plane/discovery/resolution.ts';
import type { ResolveResponseMessage } from '../../../src/data-plane/identity/proto/meshlet-discovery.ts';

const A = 'spiffe://mesh.test/ns/shop/sa/orders';
const B = 'spiffe://mesh.test/ns/shop/sa/orders-canary';
const ep = (address: string, identity: string | undefined, ready = true) => ({ address, port: 8080, identity, ready });

describe('decide: the docs/discovery.md table', () => {
  const rows: [string, Resolution, ReturnType<typeof decide>][] = [
    [
      'meshed → mTLS pinned to exactly those identities, with the port protocol',
      { kind: 'meshed', identities: [A, B], protocol: 'grpc', endpoints: [ep('10.244.1.10', A), ep('10.244.1.11', B)], endpointsTruncated: false, service: 'orders.shop', reason: '' },
      { action: 'mtls', identities: [A, B], protocol: 'grpc' },
    ],
    [
      'mixed → the ready endpoints, each with its own decision (meshed: mTLS pinned to its identity; unmeshed: plaintext labelled unmeshed)',
      { kind: 'mixed', identities: [A], protocol: 'http', endpoints: [ep('10.244.1.10', A), ep('10.244.1.20', undefined), ep('10.244.1.12', A, false)], endpointsTruncated: false, service: 'orders.shop', reason: '' },
      {
        action: 'endpoints',
        protocol: 'http',
        endpoints: [
          { address: '10.244.1.10', port: 8080, then: { action: 'mtls', identities: [A] } },
          { address: '10.244.1.20', port: 8080, then: { action: 'plaintext', label: 'unmeshed' } },
        ],
      },
    ],
    [
      'mixed with no ready endpoint → refuse',
      { kind: 'mixed', identities: [A], protocol: 'http', endpoints: [ep('10.244.1.10', A, false), ep('10.244.1.20', undefined, false)], endpointsTruncated: false, service: 'orders.shop', reason: '' },
      { action: 'refuse', reason: 'no_ready_endpoint', detail: expect.any(String) as string },
    ],
    [
      'unmeshed (in the cluster) → plaintext, labelled unmeshed',
      { kind: 'unmeshed', protocol: 'tcp', endpoints: [ep('10.244.1.20', undefined)], endpointsTruncated: false, service: 'legacy.shop', reason: '' },
      { action: 'plaintext', label: 'unmeshed', protocol: 'tcp' },
    ],
    ['external → the egress rules', { kind: 'external', externalName: '', reason: 'outside' }, { action: 'egress' }],
    ['an ExternalName Service → the egress rules', { kind: 'external', externalName: 'search.example.com', reason: 'ExternalName' }, { action: 'egress' }],
    ['unknown → refuse (fail closed)', { kind: 'unknown', reason: 'no pod has 10.244.9.9' }, { action: 'refuse', reason: 'unknown_destination', detail: 'no pod has 10.244.9.9' }],
    [
      'unavailable, in the cluster → refuse (fail closed), never plaintext',
      { kind: 'unavailable', reason: 'stale', detail: 'watch down', inCluster: true },
      { action: 'refuse', reason: 'discovery_unavailable', detail: expect.stringContaining('stale') as string },
    ],
    ['unavailable, outside the cluster → the egress rules', { kind: 'unavailable', reason: 'unreachable', detail: 'no connection', inCluster: false }, { action: 'egress' }],
  ];
  it.each(rows)('%s', (_what, resolution, expected) => {
    expect(decide(resolution)).toEqual(expected);
  });

  it('plaintext comes only from unmeshed answers and the unmeshed endpoints of mixed ones', () => {
    for (const [, resolution] of rows) {
      const d = decide(resolution);
      const plaintext = d.action === 'plaintext' || (d.action === 'endpoints' && d.endpoints.some((e) => e.then.action === 'plaintext'));
      if (plaintext) expect(['unmeshed', 'mixed'], resolution.kind).toContain(resolution.kind);
      if (resolution.kind === 'unmeshed') expect(plaintext).toBe(true);
    }
  });

  it('docs/discovery.md names every action and refusal reason decide() can return', () => {
    const doc = readFileSync(new URL('../../../docs/discovery.md', import.meta.url), 'utf8');
    for (const word of ['`mtls`', '`endpoints`', '`plaintext`', '`egress`', '`refuse`', '`unknown_destination`', '`discovery_unavailable`', '`no_ready_endpoint`']) expect(doc).toContain(word);
  });
});

describe("toResolution: the service's answer, checked", () => {
  const base: ResolveResponseMessage = { kind: 'MESHED', identities: [A], protocol: 'http', endpoints: [{ address: '10.244.1.10', port: 8080, identity: A, ready: true }], endpoints_truncated: false, service: 'orders.shop', external_name: '', reason: 'r' };

  it('maps every kind', () => {
    expect(toResolution(base)).toEqual({ kind: 'meshed', identities: [A], protocol: 'http', endpoints: [{ address: '10.244.1.10', port: 8080, identity: A, ready: true }], endpointsTruncated: false, service: 'orders.shop', reason: 'r' });
    expect(toResolution({ ...base, kind: 'MIXED', endpoints: [...base.endpoints, { address: '10.244.1.20', port: 8080, identity: '', ready: false }] })).toMatchObject({ kind: 'mixed', endpoints: [{ identity: A }, { identity: undefined, ready: false }] });
    expect(toResolution({ ...base, kind: 'UNMESHED', identities: [], endpoints: [{ address: '10.244.1.20', port: 5432, identity: '', ready: true }], protocol: 'tcp' })).toMatchObject({ kind: 'unmeshed', protocol: 'tcp' });
    expect(toResolution({ ...base, kind: 'EXTERNAL', external_name: 'search.example.com' })).toEqual({ kind: 'external', externalName: 'search.example.com', reason: 'r' });
    expect(toResolution({ ...base, kind: 'UNKNOWN' })).toEqual({ kind: 'unknown', reason: 'r' });
  });

  it('a protocol it does not know is detect', () => {
    expect(toResolution({ ...base, protocol: 'quic' })).toMatchObject({ protocol: 'detect' });
  });

  it.each([
    ['KIND_UNSPECIFIED', { kind: 'KIND_UNSPECIFIED' as never }],
    ['MESHED without identities', { identities: [] }],
    ['an identity that is not a SPIFFE ID', { identities: ['orders'] }],
    ['an endpoint without a port', { endpoints: [{ address: '10.244.1.10', port: 0, identity: A, ready: true }] }],
    ['MIXED with an endpoint identity outside identities', { kind: 'MIXED' as const, endpoints: [{ address: '10.244.1.10', port: 8080, identity: B, ready: true }] }],
    ['UNMESHED with a meshed endpoint', { kind: 'UNMESHED' as const }],
  ])('refuses %s', (_what, patch) => {
    expect(() => toResolution({ ...base, ...patch })).toThrow();
  });
});

describe('loading', () => {
  it('only create-discovery.ts names the gRPC client, and only through a dynamic import (no grpc-js while discovery is off)', () => {
    const dir = new URL('../../../src/data-plane/discovery/', import.meta.url);
    for (const file of ['create-discovery.ts', 'destination-cache.ts', 'decide.ts', 'resolution.ts', 'cluster-scope.ts']) {
      const src = readFileSync(new URL(file, dir), 'utf8');
      expect(src, file).not.toMatch(/^import[^;]*['"]@grpc\//m);
      expect(src, file).not.toMatch(/^import[^;(]*discovery-client/m);
      expect(src, file).not.toMatch(/^import[^;]*meshlet-discovery/m);
    }
    expect(readFileSync(new URL('create-discovery.ts', dir), 'utf8')).toContain("await import('./discovery-client.ts')");
  });
});
