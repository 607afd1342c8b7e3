import { describe, expect, it } from 'vitest';
import { EgressRules } from '../../../src/data-plane/proxy/outbound/egress-rules.ts';
import { readSidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { egressRules } from '../../../src/data-plane/sidecar/destinations.ts';

/** Issue 14 item 3: egress passed through by default, with allow/deny rules by host, CIDR and port. */
const base = { MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'sa' };
const rules = (env: Record<string, string>) => egressRules(readSidecarConfig({ ...base, ...env }));

describe('egress rules', () => {
  it('default allow: everything passes', () => {
    expect(rules({}).decide({ address: '203.0.113.7', port: 443, name: 'api.example.com' }).action).toBe('allow');
  });

  it('deny by SNI / Host name, by suffix, by CIDR, by port', () => {
    const r = rules({ MESHLET_EGRESS_DENY: 'evil.example.com,*.tracker.example,198.51.100.0/24,203.0.113.7:25' });
    expect(r.decide({ address: '203.0.113.9', port: 443, name: 'evil.example.com' })).toEqual({ action: 'deny', why: 'MESHLET_EGRESS_DENY' });
    expect(r.decide({ address: '203.0.113.9', port: 443, name: 'a.tracker.example' }).action).toBe('deny');
    expect(r.decide({ address: '198.51.100.20', port: 5432, name: null }).action).toBe('deny');
    expect(r.decide({ address: '203.0.113.7', port: 25, name: null }).action).toBe('deny');
    expect(r.decide({ address: '203.0.113.7', port: 587, name: null }).action).toBe('allow');
  });

  it('default deny with an allow list; deny wins over allow', () => {
    const r = rules({ MESHLET_OUTBOUND_PASSTHROUGH: 'deny', MESHLET_EGRESS_ALLOW: '*.googleapis.com:443,10.0.0.0/8', MESHLET_EGRESS_DENY: 'storage.googleapis.com' });
    // Allowed by the name alone: the caller must dial the name (byName), not the app's address.
    expect(r.decide({ address: '142.250.1.1', port: 443, name: 'pubsub.googleapis.com' })).toEqual({ action: 'allow', why: 'MESHLET_EGRESS_ALLOW', byName: true });
    // Allowed by the address (a CIDR rule): no name needed.
    expect(r.decide({ address: '10.1.2.3', port: 443, name: 'pubsub.googleapis.com' })).toEqual({ action: 'allow', why: 'MESHLET_EGRESS_ALLOW' });
    expect(r.decide({ address: '142.250.1.1', port: 80, name: 'pubsub.googleapis.com' }).action).toBe('deny');
    expect(r.decide({ address: '142.250.1.1', port: 443, name: 'storage.googleapis.com' })).toEqual({ action: 'deny', why: 'MESHLET_EGRESS_DENY' });
    expect(r.decide({ address: '10.1.2.3', port: 9000, name: null }).action).toBe('allow');
    expect(r.decide({ address: '192.0.2.1', port: 443, name: null })).toEqual({ action: 'deny', why: 'MESHLET_OUTBOUND_PASSTHROUGH=deny' });
  });

  it('plain TCP has no name: only CIDR rules can match it', () => {
    const r = new EgressRules('allow', [], [{ hosts: ['db.example.com'] }]);
    expect(r.decide({ address: '192.0.2.5', port: 5432, name: null }).action).toBe('allow');
  });

  it('a bad rule is a configuration error naming the variable', () => {
    expect(() => rules({ MESHLET_EGRESS_DENY: '10.0.0.0/99' })).toThrow(/MESHLET_EGRESS_DENY/);
  });
});
