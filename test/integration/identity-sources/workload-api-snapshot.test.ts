import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRootCa, issueSvid, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { pemCertificatesToDer } from '../../../src/data-plane/identity/pem.ts';
import { WorkloadApiSource } from '../../../src/data-plane/identity/sources/workload-api.ts';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { pemToConcatenatedDer, svidMessage, WorkloadApiServer } from '../../support/workload-api-server.ts';
import { nextEvent } from './events.ts';

// Snapshot semantics of FetchX509SVID: the first message at once, later ones pushed on change,
// each a complete snapshot (SPIFFE_Workload_API.md §5.3).
describe('workload-api source: snapshots', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let server: WorkloadApiServer;
  let source: WorkloadApiSource | undefined;
  const ID = 'spiffe://example.org/ns/shop/sa/orders';

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-wlapi-'));
    ca = await createRootCa({ trustDomain: 'example.org' });
    server = await WorkloadApiServer.start(join(dir, 'agent.sock'));
  });

  afterEach(async () => {
    await source?.close();
    source = undefined;
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const serialOf = (s: IdentitySnapshot) => new X509Certificate(pemCertificatesToDer(s.svid.certChainPem)[0]!).serialNumber;

  it('resolves start() with the first snapshot, sent with the security header', async () => {
    const svid = await issueSvid(ca, { spiffeId: ID });
    server.setResponse({ svids: [svidMessage(svid)] });
    source = new WorkloadApiSource({ endpoint: server.endpoint });

    const snapshot = await source.start();

    expect(snapshot.svid.spiffeId.id).toBe(ID);
    expect(pemCertificatesToDer(snapshot.svid.certChainPem)).toEqual(pemCertificatesToDer(svid.certChainPem));
    expect(snapshot.svid.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(snapshot.svid.notAfter.getTime()).toBe(svid.notAfter.getTime());
    expect([...snapshot.bundles.keys()]).toEqual(['example.org']);
    expect(pemCertificatesToDer(snapshot.bundles.get('example.org')!)).toEqual(pemCertificatesToDer(ca.bundlePem));
    expect(source.current()).toBe(snapshot);
    expect(server.headersSeen).toEqual([['true']]);
  });

  it('also speaks to a tcp://IP:port endpoint', async () => {
    const tcp = await WorkloadApiServer.startTcp({ svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))] });
    const overTcp = new WorkloadApiSource({ endpoint: tcp.endpoint });
    try {
      expect(tcp.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
      expect((await overTcp.start()).svid.spiffeId.id).toBe(ID);
    } finally {
      await overTcp.close();
      await tcp.stop();
    }
  });

  it('takes the endpoint from SPIFFE_ENDPOINT_SOCKET when none is configured', async () => {
    server.setResponse({ svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))] });
    source = new WorkloadApiSource({ env: { SPIFFE_ENDPOINT_SOCKET: server.endpoint } });
    expect((await source.start()).svid.spiffeId.id).toBe(ID);
  });

  it('emits an update with the new SVID when the server pushes a rotation, and none for an identical message', async () => {
    const first = await issueSvid(ca, { spiffeId: ID });
    server.setResponse({ svids: [svidMessage(first)] });
    source = new WorkloadApiSource({ endpoint: server.endpoint });
    const initial = await source.start();
    const updates: IdentitySnapshot[] = [];
    source.onUpdate((s) => updates.push(s));

    const rotated = await issueSvid(ca, { spiffeId: ID });
    const next = nextEvent<IdentitySnapshot>((l) => source!.onUpdate(l), undefined, 'update');
    server.setResponse({ svids: [svidMessage(first)] }); // same content again: no update
    server.setResponse({ svids: [svidMessage(rotated)] });
    const updated = await next;

    expect(serialOf(updated)).toBe(new X509Certificate(pemCertificatesToDer(rotated.certChainPem)[0]!).serialNumber);
    expect(serialOf(updated)).not.toBe(serialOf(initial));
    expect(source.current()).toBe(updated);
    expect(updates).toEqual([updated]);
    expect(server.fetchCalls).toBe(1); // one stream, kept open
  });

  it('includes federated bundles, keyed by trust domain, next to its own', async () => {
    const partner = await createRootCa({ trustDomain: 'partner.example' });
    const legacy = await createRootCa({ trustDomain: 'legacy.example' });
    server.setResponse({
      svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))],
      federated_bundles: {
        'spiffe://partner.example': pemToConcatenatedDer(partner.bundlePem),
        'legacy.example': pemToConcatenatedDer(legacy.bundlePem),
      },
    });
    source = new WorkloadApiSource({ endpoint: server.endpoint });

    const snapshot = await source.start();

    expect([...snapshot.bundles.keys()].sort()).toEqual(['example.org', 'legacy.example', 'partner.example']);
    expect(pemCertificatesToDer(snapshot.bundles.get('partner.example')!)).toEqual(pemCertificatesToDer(partner.bundlePem));
    expect(pemCertificatesToDer(snapshot.bundles.get('legacy.example')!)).toEqual(pemCertificatesToDer(legacy.bundlePem));
  });

  it('uses svids[0] by default and the SVID with the configured hint or SPIFFE ID when asked', async () => {
    const internal = await issueSvid(ca, { spiffeId: 'spiffe://example.org/internal' });
    const external = await issueSvid(ca, { spiffeId: 'spiffe://example.org/external' });
    server.setResponse({ svids: [svidMessage(internal, { hint: 'internal' }), svidMessage(external, { hint: 'external' })] });

    const byDefault = new WorkloadApiSource({ endpoint: server.endpoint });
    const byHint = new WorkloadApiSource({ endpoint: server.endpoint, hint: 'external' });
    const byId = new WorkloadApiSource({ endpoint: server.endpoint, spiffeId: 'spiffe://example.org/external' });
    try {
      expect((await byDefault.start()).svid.spiffeId.id).toBe('spiffe://example.org/internal');
      expect((await byHint.start()).svid.spiffeId.id).toBe('spiffe://example.org/external');
      expect((await byId.start()).svid.spiffeId.id).toBe('spiffe://example.org/external');
    } finally {
      await Promise.all([byDefault.close(), byHint.close(), byId.close()]);
    }
  });

  it('keeps chain intermediates in order, leaf first', async () => {
    const { createIntermediateCa } = await import('../../../src/control-plane/identity-service/ca.ts');
    const intermediate = await createIntermediateCa(ca);
    const svid = await issueSvid(intermediate, { spiffeId: ID });
    server.setResponse({ svids: [svidMessage(svid)] });
    source = new WorkloadApiSource({ endpoint: server.endpoint });

    const chain = pemCertificatesToDer((await source.start()).svid.certChainPem);

    expect(chain).toHaveLength(2);
    expect(chain[1]).toEqual(pemCertificatesToDer(intermediate.certPem)[0]);
  });
});
