import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRootCa, issueSvid, type CertificateAuthority } from '../../../src/control-plane/identity-service/ca.ts';
import { pemCertificatesToDer } from '../../../src/data-plane/identity/pem.ts';
import { WorkloadApiSource, type WorkloadApiError } from '../../../src/data-plane/identity/sources/workload-api.ts';
import type { IdentitySnapshot } from '../../../src/data-plane/identity/svid.ts';
import { svidMessage, WorkloadApiServer } from '../../support/workload-api-server.ts';
import { causeCodes, nextEvent } from './events.ts';

// Reconnect rules (SPIFFE_Workload_API.md, go-spiffe): keep the stream open, reopen it when it
// fails or ends, and retry Unavailable / PermissionDenied with backoff. The backoff here is
// shortened to tens of milliseconds so the tests do not wait whole seconds; its shape is the
// one go-spiffe uses (linear steps up to a cap).
const FAST_BACKOFF = { initialMs: 20, stepMs: 20, maxMs: 200 };

describe('workload-api source: reconnects', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let server: WorkloadApiServer;
  let source: WorkloadApiSource | undefined;
  const ID = 'spiffe://example.org/ns/shop/sa/orders';
  const leafSerial = (pem: string) => new X509Certificate(pemCertificatesToDer(pem)[0]!).serialNumber;

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

  it('reconnects after the server restarts and takes the SVID it serves then', async () => {
    server.setResponse({ svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))] });
    source = new WorkloadApiSource({ endpoint: server.endpoint, backoff: FAST_BACKOFF });
    const before = await source.start();
    const streamFailed = nextEvent<Error>((l) => source!.onError(l), (e) => (e as WorkloadApiError).code === 'WORKLOAD_API_STREAM_FAILED', 'stream failure');

    await server.stop();
    await streamFailed;
    const rotated = await issueSvid(ca, { spiffeId: ID });
    const updated = nextEvent<IdentitySnapshot>((l) => source!.onUpdate(l), undefined, 'update');
    server.setResponse({ svids: [svidMessage(rotated)] });
    await server.listen();

    const after = await updated;
    expect(leafSerial(after.svid.certChainPem)).toBe(leafSerial(rotated.certChainPem));
    expect(leafSerial(after.svid.certChainPem)).not.toBe(leafSerial(before.svid.certChainPem));
    expect(server.headersSeen.every((h) => h.length === 1 && h[0] === 'true')).toBe(true);
  });

  it('keeps the current snapshot while the server is down', async () => {
    server.setResponse({ svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))] });
    source = new WorkloadApiSource({ endpoint: server.endpoint, backoff: FAST_BACKOFF });
    const snapshot = await source.start();
    const errors: Error[] = [];
    source.onError((e) => errors.push(e));

    await server.stop();
    // Several failed reconnects (the socket is gone): each is an error event, none touches the snapshot.
    while (errors.length < 3) await nextEvent<Error>((l) => source!.onError(l), undefined, 'reconnect failure');

    expect(errors.every((e) => (e as WorkloadApiError).code === 'WORKLOAD_API_STREAM_FAILED')).toBe(true);
    expect(source.current()).toBe(snapshot);
  });

  it('retries PERMISSION_DENIED (no identity issued yet) until the server has an SVID', async () => {
    server.failNext(grpc.status.PERMISSION_DENIED, 2, 'no identity issued');
    server.setResponse({ svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))] });
    source = new WorkloadApiSource({ endpoint: server.endpoint, backoff: FAST_BACKOFF });
    const errors: Error[] = [];
    source.onError((e) => errors.push(e));

    const snapshot = await source.start();

    expect(snapshot.svid.spiffeId.id).toBe(ID);
    expect(server.fetchCalls).toBe(3);
    expect(errors.map((e) => (e as WorkloadApiError).code)).toEqual(['WORKLOAD_API_STREAM_FAILED', 'WORKLOAD_API_STREAM_FAILED']);
    expect(errors[0]!.message).toMatch(/PERMISSION_DENIED: no identity issued/);
  });

  it('retries UNAVAILABLE as well', async () => {
    server.failNext(grpc.status.UNAVAILABLE, 1);
    server.setResponse({ svids: [svidMessage(await issueSvid(ca, { spiffeId: ID }))] });
    source = new WorkloadApiSource({ endpoint: server.endpoint, backoff: FAST_BACKOFF });
    expect((await source.start()).svid.spiffeId.id).toBe(ID);
    expect(server.fetchCalls).toBe(2);
  });

  it('start() rejects with WORKLOAD_API_START_TIMEOUT when the socket never appears', async () => {
    source = new WorkloadApiSource({ endpoint: `unix://${join(dir, 'absent.sock')}`, backoff: FAST_BACKOFF, startTimeoutMs: 500 });
    const err = await source.start().then(() => undefined, (e: unknown) => e);
    expect(causeCodes(err)[0]).toBe('WORKLOAD_API_START_TIMEOUT');
    expect(causeCodes(err)[1]).toBe('WORKLOAD_API_STREAM_FAILED');
    expect((err as Error).message).toMatch(/absent\.sock/);
  });

  it('close() before the first SVID rejects start() with WORKLOAD_API_CLOSED', async () => {
    // No response set: the server answers PermissionDenied and the source keeps retrying.
    source = new WorkloadApiSource({ endpoint: server.endpoint, backoff: FAST_BACKOFF });
    const started = source.start().then(() => undefined, (e: unknown) => e);
    await nextEvent<Error>((l) => source!.onError(l), undefined, 'PermissionDenied');
    await source.close();
    expect(causeCodes(await started)[0]).toBe('WORKLOAD_API_CLOSED');
  });
});
