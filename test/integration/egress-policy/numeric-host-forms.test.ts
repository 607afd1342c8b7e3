import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundProxy } from '../../../src/data-plane/proxy/outbound/outbound-proxy.ts';
import { EgressRules } from '../../../src/data-plane/proxy/outbound/egress-rules.ts';
import { DestinationPolicy } from '../../../src/data-plane/proxy/outbound/destination-policy.ts';
import { frontendClient } from '../../unit/policy/frontend-client.ts';
import { IDS, meshTlsFor, request, createMeshPki } from '../proxy/support/mesh-fixture.ts';

/**
 * Security regression (issue 16 review): an IPv4 address written in a legacy numeric form —
 * `2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1` — is no IP literal to the sidecar's rules (not
 * isIP) but the resolver (inet_aton) dials it as one. Before the fix such a Host was routed as a
 * name outside the cluster, so a MESHLET_EGRESS_DENY CIDR (the classic: the cloud metadata
 * address) never saw its address, and the request reached it. The route step now refuses such a
 * Host (400 MESHLET_BAD_REQUEST) before anything is resolved or dialled. Real sockets: an HTTP
 * server on 127.0.0.1 that the egress settings deny by CIDR.
 */
let target: http.Server;
let targetPort: number;
let seen = 0;
let outbound: OutboundProxy;
let port: number;

beforeAll(async () => {
  target = http.createServer((_req, res) => {
    seen++;
    res.end('the denied address answered');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  targetPort = (target.address() as AddressInfo).port;
  const pki = await createMeshPki();
  const rules = frontendClient('        []\n', { clientLines: '      default: audit\n' });
  outbound = new OutboundProxy({
    tls: meshTlsFor(pki.svids.frontend),
    destinations: { mesh: [] },
    listenPort: 0,
    transparent: {
      passthrough: 'allow',
      egress: new EgressRules('allow', [], [{ cidrs: ['127.0.0.1/32'] }]),
      discovery: { resolve: () => ({ kind: 'external', externalName: '', reason: 'outside' }) },
    },
    clientPolicy: new DestinationPolicy({ current: () => rules, series: () => ({ value: 0 }), self: () => IDS.frontend }),
  });
  await outbound.start();
  port = outbound.boundPort();
});
afterAll(async () => {
  await outbound?.drain();
  target?.close();
});

const get = (authority: string) => request(port, { path: '/', headers: { host: authority }, agent: false });

describe('a Host naming the denied address in a legacy numeric IPv4 form', () => {
  it('the dotted quad itself is refused by the egress settings (the baseline)', async () => {
    const r = await get(`127.0.0.1:${targetPort}`);
    expect(r.status).toBe(502);
    expect(r.headers['x-meshlet-error']).toBe('MESHLET_UNKNOWN_DESTINATION');
  });

  for (const form of ['2130706433', '0x7f000001', '0x7f.1', '127.1', '0177.0.0.1', '127.0.0.01', '0X7F.0.0.1']) {
    it(`${form}: 400 MESHLET_BAD_REQUEST, nothing dialled`, async () => {
      const before = seen;
      const r = await get(`${form}:${targetPort}`);
      expect(r.status).toBe(400);
      expect(r.headers['x-meshlet-error']).toBe('MESHLET_BAD_REQUEST');
      expect(JSON.parse(r.body).error.message).toBe(`${form.toLowerCase()} is an IPv4 address in a legacy numeric form (the resolver would dial it as one, out of reach of the address rules); write it as a dotted quad without leading zeros`);
      expect(seen).toBe(before);
    });
  }

  it('a name that merely starts with digits is a name', async () => {
    const r = await get(`1password.example:${targetPort}`);
    // Not refused as a numeric form: it is routed as a name (outside, no DNS here: the dial fails).
    expect(r.headers['x-meshlet-error']).not.toBe('MESHLET_BAD_REQUEST');
  });
});
