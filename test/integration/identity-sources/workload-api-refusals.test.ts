import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRootCa, issueSvid, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { pemCertificatesToDer } from '../../../src/data-plane/identity/pem.ts';
import { loadWorkloadApiProto, WorkloadApiSource, type WorkloadApiError } from '../../../src/data-plane/identity/sources/workload-api.ts';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { svidMessage, WorkloadApiServer } from '../../support/workload-api-server.ts';
import { causeCodes, nextEvent } from './events.ts';

// What a retry cannot fix is not retried (InvalidArgument, Unimplemented), and what does not
// hold a usable SVID never replaces the one the source has.
const FAST_BACKOFF = { initialMs: 20, stepMs: 20, maxMs: 200 };

describe('workload-api source: refusals and bad messages', () => {
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

  it('a call without the workload.spiffe.io header gets InvalidArgument, like SPIRE', async () => {
    server.setResponse({ svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))] });
    const Client = loadWorkloadApiProto()['SpiffeWorkloadAPI'] as grpc.ServiceClientConstructor;
    const client = new Client(server.endpoint, grpc.credentials.createInsecure());
    try {
      const call = (client as unknown as { FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<unknown> }).FetchX509SVID({}, new grpc.Metadata());
      call.on('error', () => {});
      const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(status.details).toBe('security header missing from request');
      expect(server.headersSeen).toEqual([[]]);
    } finally {
      client.close();
    }
  });

  for (const code of [grpc.status.INVALID_ARGUMENT, grpc.status.UNIMPLEMENTED]) {
    it(`does not retry ${grpc.status[code]}: start() rejects with WORKLOAD_API_REJECTED after one call`, async () => {
      server.failNext(code, 1);
      server.setResponse({ svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))] });
      source = new WorkloadApiSource({ endpoint: server.endpoint, backoff: FAST_BACKOFF });

      const err = await source.start().then(() => undefined, (e: unknown) => e);

      expect(causeCodes(err)[0]).toBe('WORKLOAD_API_REJECTED');
      expect((err as Error).message).toContain(grpc.status[code]);
      // The server would now serve an SVID; a source that retried would have called again
      // within a few backoff steps (20 ms each). Give it ten times that.
      await new Promise((r) => setTimeout(r, 500));
      expect(server.fetchCalls).toBe(1);
      expect(source.current()).toBeUndefined();
    });
  }

  it('a message whose key does not match its certificate is an error event and keeps the snapshot', async () => {
    const good = await issueSvid(ca, { spiffeId: ID });
    server.setResponse({ svids: [svidMessage(good)] });
    source = new WorkloadApiSource({ endpoint: server.endpoint, backoff: FAST_BACKOFF });
    const snapshot = await source.start();
    const updates: IdentitySnapshot[] = [];
    source.onUpdate((s) => updates.push(s));

    const other = await issueSvid(ca, { spiffeId: ID });
    const mismatched = { ...svidMessage(other), x509_svid_key: svidMessage(good).x509_svid_key };
    const error = nextEvent<Error>((l) => source!.onError(l), undefined, 'error event');
    server.setResponse({ svids: [mismatched] });
    const err = await error;

    expect(causeCodes(err)).toEqual(['WORKLOAD_API_BAD_RESPONSE', 'PEM_KEY_MISMATCH']);
    expect(source.current()).toBe(snapshot);
    expect(updates).toEqual([]);

    // The stream is still open and the next good message is taken.
    const update = nextEvent<IdentitySnapshot>((l) => source!.onUpdate(l), undefined, 'update');
    server.setResponse({ svids: [svidMessage(other)] });
    expect(pemCertificatesToDer((await update).svid.certChainPem)).toEqual(pemCertificatesToDer(other.certChainPem));
    expect(server.fetchCalls).toBe(1);
  });

  const defects: [string, (m: ReturnType<typeof svidMessage>) => object, string][] = [
    ['a truncated x509_svid', (m) => ({ ...m, x509_svid: m.x509_svid.subarray(0, m.x509_svid.length - 10) }), 'DER_TRUNCATED'],
    ['a spiffe_id that is not the leaf\'s', (m) => ({ ...m, spiffe_id: 'spiffe://example.org/ns/shop/sa/other' }), 'SVID_ID_MISMATCH'],
    ['an empty bundle', (m) => ({ ...m, bundle: Buffer.alloc(0) }), 'PEM_NO_CERTIFICATE'],
    ['a corrupt key', (m) => ({ ...m, x509_svid_key: Buffer.from('not a key') }), 'PEM_BAD_PRIVATE_KEY'],
  ];
  for (const [name, corrupt, code] of defects) {
    it(`rejects a message with ${name} (${code})`, async () => {
      const good = await issueSvid(ca, { spiffeId: ID });
      server.setResponse({ svids: [svidMessage(good)] });
      source = new WorkloadApiSource({ endpoint: server.endpoint, backoff: FAST_BACKOFF });
      const snapshot = await source.start();
      const error = nextEvent<Error>((l) => source!.onError(l), undefined, 'error event');
      server.setResponse({ svids: [corrupt(svidMessage(await issueSvid(ca, { spiffeId: ID }))) as ReturnType<typeof svidMessage>] });
      const err = await error;
      expect(causeCodes(err)[0]).toBe('WORKLOAD_API_BAD_RESPONSE');
      expect(causeCodes(err)).toContain(code);
      expect(source.current()).toBe(snapshot);
    });
  }

  it('a message whose SVID does not chain to its bundle is refused (SVID_UNKNOWN_AUTHORITY)', async () => {
    server.setResponse({ svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))] });
    source = new WorkloadApiSource({ endpoint: server.endpoint, backoff: FAST_BACKOFF });
    const snapshot = await source.start();
    const stranger = await createRootCa({ trustDomain: 'example.org' });
    const error = nextEvent<Error>((l) => source!.onError(l), undefined, 'error event');
    server.setResponse({ svids: [{ ...svidMessage(await issueSvid(stranger, { spiffeId: ID })), bundle: svidMessage(await issueSvid(ca, { spiffeId: ID })).bundle }] });
    expect(causeCodes(await error).slice(0, 2)).toEqual(['WORKLOAD_API_BAD_RESPONSE', 'SVID_UNKNOWN_AUTHORITY']);
    expect(source.current()).toBe(snapshot);
  });

  it('a federated bundle under a key that is not a trust domain is a bad response (SVID_BAD_TRUST_DOMAIN)', async () => {
    const good = svidMessage(await issueSvid(ca, { spiffeId: ID }));
    server.setResponse({ svids: [good], federated_bundles: { 'spiffe://Partner.Example': good.bundle } });
    source = new WorkloadApiSource({ endpoint: server.endpoint, startTimeoutMs: 1_000 });
    const error = nextEvent<Error>((l) => source!.onError(l), undefined, 'error event');
    const started = source.start().then(() => undefined, (e: unknown) => e);
    expect(causeCodes(await error).slice(0, 2)).toEqual(['WORKLOAD_API_BAD_RESPONSE', 'SVID_BAD_TRUST_DOMAIN']);
    expect(causeCodes(await started)[0]).toBe('WORKLOAD_API_START_TIMEOUT');
  });

  it('an empty svids list is a bad response', async () => {
    server.setResponse({ svids: [] });
    source = new WorkloadApiSource({ endpoint: server.endpoint, backoff: FAST_BACKOFF, startTimeoutMs: 1_000 });
    const error = nextEvent<Error>((l) => source!.onError(l), undefined, 'error event');
    const started = source.start().then(() => undefined, (e: unknown) => e);
    expect((await error as WorkloadApiError).code).toBe('WORKLOAD_API_BAD_RESPONSE');
    const err = await started;
    expect(causeCodes(err)).toEqual(['WORKLOAD_API_START_TIMEOUT', 'WORKLOAD_API_BAD_RESPONSE', 'WORKLOAD_API_NO_SVID']);
  });

  it('a response without the configured SPIFFE ID is a bad response naming what was offered', async () => {
    server.setResponse({ svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))] });
    source = new WorkloadApiSource({ endpoint: server.endpoint, spiffeId: 'spiffe://example.org/ns/shop/sa/billing', startTimeoutMs: 1_000 });
    const error = nextEvent<Error>((l) => source!.onError(l), undefined, 'error event');
    const started = source.start().then(() => undefined, (e: unknown) => e);
    const err = await error;
    expect(causeCodes(err)).toEqual(['WORKLOAD_API_BAD_RESPONSE', 'WORKLOAD_API_NO_MATCHING_SVID']);
    expect(err.message).toContain(`offered: ${ID}`);
    expect(causeCodes(await started)[0]).toBe('WORKLOAD_API_START_TIMEOUT');
  });
});
