import * as grpc from '@grpc/grpc-js';
import { KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { checkServerIdentity, createSecureContext, type PeerCertificate } from 'node:tls';
import { MeshletError } from '../../../common/errors/meshlet-error.ts';
import { derToPem } from '../pem.ts';
import { CERTIFY_METHOD_PATH, identityServiceDefinition, REVOCATIONS_METHOD_PATH, type CertifyRequestMessage, type CertifyResponseMessage, type RevocationsResponseMessage } from '../proto/meshlet-identity.ts';
import type { IdentitySnapshot, SnapshotListener, SvidSource } from '../svid.ts';
import { x509 } from '../x509-library.ts';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { SourceListeners } from './source-listeners.ts';
import { buildSnapshot, checkServerSpiffeId } from './svid-material.ts';

/**
 * The sidecar's client of `meshlet identity`: it generates an ECDSA P-256 key in memory
 * (a fresh one for every certificate; it never touches disk), sends a CSR with its
 * projected ServiceAccount token to Certify over TLS, and emits the SVID it gets back.
 *
 * Renewal at about half the lifetime: uniformly in [renewFraction - renewJitter,
 * renewFraction] of the validity left when the SVID arrived, so a fleet started together
 * does not renew together. While the CA is unreachable it retries with backoff and keeps serving
 * the current SVID; when that SVID expires it emits MESHLET_CA_SVID_EXPIRED (once per SVID)
 * and keeps retrying — `current()` still returns the expired snapshot, because the TLS
 * layer has nothing better; the sidecar should turn /ready to 503 on that error so the pod
 * leaves its Services' endpoints until a new SVID arrives.
 */
export class MeshletCaSourceError extends MeshletError {
  constructor(code: MeshletCaSourceErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

export type MeshletCaSourceErrorCode =
  | 'MESHLET_CA_BAD_OPTIONS'
  | 'MESHLET_CA_TOKEN_UNREADABLE'
  | 'MESHLET_CA_CERTIFY_FAILED'
  | 'MESHLET_CA_BAD_RESPONSE'
  | 'MESHLET_CA_SVID_EXPIRED'
  | 'MESHLET_CA_START_TIMEOUT'
  | 'MESHLET_CA_CLOSED';

/** A Certify call that failed; `grpcStatus` tells whether retrying can help. */
export class CertifyCallError extends MeshletCaSourceError {
  readonly grpcStatus: grpc.status;
  /** The service's own error code (IDENTITY_*), from the `meshlet-error-code` trailer. */
  readonly serviceCode: string | undefined;

  constructor(grpcStatus: grpc.status, serviceCode: string | undefined, message: string, options?: ErrorOptions) {
    super('MESHLET_CA_CERTIFY_FAILED', message, options);
    this.grpcStatus = grpcStatus;
    this.serviceCode = serviceCode;
  }
}

export interface MeshletCaSourceOptions {
  /** host:port of the identity service, e.g. meshlet-identity.meshlet-system.svc:8443 */
  address: string;
  /** The mesh's trust domain; the SVID must be in it. */
  trustDomain: string;
  /** PEM roots the identity service's certificate must chain to (the mesh roots). */
  rootsPem: string;
  /** The projected ServiceAccount token, re-read on every call (kubelet rotates it in place). */
  tokenPath: string;
  /**
   * How to recognise the identity service. Default: its SVID must carry
   * spiffe://<trustDomain>/ns/meshlet-system/sa/meshlet-identity (what `meshlet identity`
   * serves by default). Give `{ dnsName }` when it serves a certificate for a DNS name.
   */
  server?: { spiffeId: string } | { dnsName: string };
  /** Fraction of the lifetime after which to renew. Default 0.5. */
  renewFraction?: number;
  /** Renewal spread downwards, as a fraction of the lifetime. Default 0.1. */
  renewJitter?: number;
  /** Retry schedule while Certify fails. Default 1 s doubling to 30 s, jitter 0.2. */
  retry?: BackoffOptions;
  /** Deadline of one Certify call. Default 10 s. */
  callTimeoutMs?: number;
  /** How long start() keeps retrying transient failures before it rejects. Default 120 s. */
  startTimeoutMs?: number;
}

// A token the service rejects, a CSR it finds malformed or a method it lacks will not get
// better by retrying at start-up: fail the start so the container restarts with a clear log.
const PERMANENT_AT_START = new Set<grpc.status>([grpc.status.INVALID_ARGUMENT, grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED, grpc.status.UNIMPLEMENTED]);

export class MeshletCaSource implements SvidSource {
  readonly kind = 'meshlet-ca';
  readonly #opts: Required<Omit<MeshletCaSourceOptions, 'retry' | 'server'>> & { server: { spiffeId: string } | { dnsName: string } };
  readonly #backoff: Backoff;
  readonly #listeners = new SourceListeners();
  readonly #client: grpc.Client;
  #snapshot: IdentitySnapshot | undefined;
  #started: Promise<IdentitySnapshot> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #inflight: grpc.ClientUnaryCall | undefined;
  #expiryReportedFor: IdentitySnapshot | undefined;
  #closed = false;

  constructor(options: MeshletCaSourceOptions) {
    const renewFraction = options.renewFraction ?? 0.5;
    const renewJitter = options.renewJitter ?? 0.1;
    if (!(renewFraction > 0 && renewFraction < 1)) throw new MeshletCaSourceError('MESHLET_CA_BAD_OPTIONS', `renewFraction must be in (0, 1), got ${renewFraction}`);
    if (!(renewJitter >= 0 && renewJitter < renewFraction)) throw new MeshletCaSourceError('MESHLET_CA_BAD_OPTIONS', `renewJitter must be in [0, renewFraction), got ${renewJitter}`);
    this.#opts = {
      address: options.address,
      trustDomain: options.trustDomain,
      rootsPem: options.rootsPem,
      tokenPath: options.tokenPath,
      server: options.server ?? { spiffeId: `spiffe://${options.trustDomain}/ns/meshlet-system/sa/meshlet-identity` },
      renewFraction,
      renewJitter,
      callTimeoutMs: options.callTimeoutMs ?? 10_000,
      startTimeoutMs: options.startTimeoutMs ?? 120_000,
    };
    this.#backoff = new Backoff(options.retry ?? { initialMs: 1_000, maxMs: 30_000, factor: 2, jitter: 0.2 });
    let context;
    try {
      context = createSecureContext({ ca: options.rootsPem, minVersion: 'TLSv1.3' });
    } catch (err) {
      throw new MeshletCaSourceError('MESHLET_CA_BAD_OPTIONS', `rootsPem is not usable as TLS roots: ${(err as Error).message}`, { cause: err });
    }
    const server = this.#opts.server;
    const credentials = grpc.credentials.createFromSecureContext(context, {
      checkServerIdentity: (hostname: string, cert: PeerCertificate) => ('dnsName' in server ? checkServerIdentity(server.dnsName, cert) : checkServerSpiffeId(server.spiffeId, cert)),
    });
    // SNI: the DNS name when checking one; else a fixed name, since the address may be an IP
    // (an IP as SNI is not allowed by RFC 6066) and the SPIFFE check ignores hostnames.
    const sni = 'dnsName' in server ? server.dnsName : 'meshlet-identity';
    this.#client = new grpc.Client(options.address, credentials, {
      'grpc.ssl_target_name_override': sni,
      // grpc-js's own reconnect backoff grows to 120 s by default, and calls fail fast while
      // it waits: after a long CA outage the channel would lag our retries by minutes.
      'grpc.initial_reconnect_backoff_ms': 1_000,
      'grpc.max_reconnect_backoff_ms': 10_000,
    });
  }

  start(): Promise<IdentitySnapshot> {
    this.#started ??= this.#firstSnapshot();
    return this.#started;
  }

  current(): IdentitySnapshot | undefined {
    return this.#snapshot;
  }

  onUpdate(listener: SnapshotListener): () => void {
    return this.#listeners.onUpdate(listener);
  }

  onError(listener: (err: Error) => void): () => void {
    return this.#listeners.onError(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#inflight?.cancel();
    this.#wake?.();
    this.#client.close();
    this.#listeners.clear();
  }

  async #firstSnapshot(): Promise<IdentitySnapshot> {
    const deadline = Date.now() + this.#opts.startTimeoutMs;
    for (;;) {
      try {
        const snapshot = await this.#fetch();
        // The first snapshot is start()'s result, not a rotation (as in the other sources).
        this.#install(snapshot, false);
        return snapshot;
      } catch (err) {
        if (this.#closed) throw new MeshletCaSourceError('MESHLET_CA_CLOSED', 'the source was closed before it got a first SVID', { cause: err });
        if (err instanceof CertifyCallError && PERMANENT_AT_START.has(err.grpcStatus)) throw err;
        this.#listeners.emitError(err as Error);
        const delay = this.#backoff.next();
        if (Date.now() + delay > deadline) {
          throw new MeshletCaSourceError('MESHLET_CA_START_TIMEOUT', `no SVID from ${this.#opts.address} within ${this.#opts.startTimeoutMs} ms; last error: ${(err as Error).message}`, { cause: err });
        }
        await this.#sleep(delay);
        if (this.#closed) throw new MeshletCaSourceError('MESHLET_CA_CLOSED', 'the source was closed before it got a first SVID');
      }
    }
  }

  #install(snapshot: IdentitySnapshot, rotation: boolean): void {
    this.#snapshot = snapshot;
    this.#backoff.reset();
    this.#scheduleRenewal(snapshot);
    if (rotation) this.#listeners.emitUpdate(snapshot);
  }

  #scheduleRenewal(snapshot: IdentitySnapshot): void {
    // Measured from when we got it, not from notBefore: the CA backdates notBefore (clock
    // skew), which would otherwise make a short-lived SVID look half-spent on arrival.
    const now = Date.now();
    const start = Math.max(now, snapshot.svid.notBefore.getTime());
    const lifetime = snapshot.svid.notAfter.getTime() - start;
    const fraction = this.#opts.renewFraction - this.#opts.renewJitter * Math.random();
    this.#arm(start + lifetime * fraction - now);
  }

  #arm(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    // setTimeout's limit is 2^31-1 ms (~24.8 days); beyond it Node fires at once. Re-arm in steps.
    const step = Math.min(Math.max(0, delayMs), 2 ** 31 - 1);
    this.#timer = setTimeout(() => (step < delayMs ? this.#arm(delayMs - step) : void this.#renew()), step);
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    if (this.#closed) return;
    try {
      this.#install(await this.#fetch(), true);
    } catch (err) {
      if (this.#closed) return;
      this.#listeners.emitError(err as Error);
      const current = this.#snapshot;
      if (current !== undefined && current.svid.notAfter.getTime() <= Date.now() && this.#expiryReportedFor !== current) {
        this.#expiryReportedFor = current;
        this.#listeners.emitError(
          new MeshletCaSourceError('MESHLET_CA_SVID_EXPIRED', `the SVID for ${current.svid.spiffeId.id} expired at ${current.svid.notAfter.toISOString()} and could not be renewed; still retrying`, { cause: err }),
        );
      }
      this.#arm(this.#backoff.next());
    }
  }

  /** One Certify round trip: new key, CSR, token, call, checked snapshot. */
  async #fetch(): Promise<IdentitySnapshot> {
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
    let token: string;
    try {
      token = (await readFile(this.#opts.tokenPath, 'utf8')).trim();
    } catch (err) {
      throw new MeshletCaSourceError('MESHLET_CA_TOKEN_UNREADABLE', `cannot read the ServiceAccount token ${this.#opts.tokenPath}: ${(err as Error).message}`, { cause: err });
    }
    const response = await this.#call({ token, csr: Buffer.from(csr.rawData) });
    return this.#toSnapshot(response, KeyObject.from(keys.privateKey));
  }

  #call(request: CertifyRequestMessage): Promise<CertifyResponseMessage> {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + this.#opts.callTimeoutMs);
      const method = identityServiceDefinition()['Certify']!;
      this.#inflight = this.#client.makeUnaryRequest<CertifyRequestMessage, CertifyResponseMessage>(
        CERTIFY_METHOD_PATH,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline },
        (err: grpc.ServiceError | null, res?: CertifyResponseMessage) => {
          this.#inflight = undefined;
          if (!err) return resolve(res!);
          const serviceCode = err.metadata?.get('meshlet-error-code')[0];
          const status = grpc.status[err.code] ?? String(err.code);
          reject(new CertifyCallError(err.code, typeof serviceCode === 'string' ? serviceCode : undefined, `Certify at ${this.#opts.address} failed: ${status}: ${err.details}`, { cause: err }));
        },
      );
    });
  }

  /**
   * One Revocations call over this source's channel (docs/revocation.md "Learning the list from
   * the identity service"): the list in force at the service, or none when `knownSha256` is still
   * it. Authenticated with the projected token, as Certify. Fails with CertifyCallError (its
   * grpcStatus: UNIMPLEMENTED from a service older than the call) or MESHLET_CA_TOKEN_UNREADABLE.
   */
  async fetchRevocations(knownSha256: string): Promise<RevocationsResponseMessage> {
    let token: string;
    try {
      token = (await readFile(this.#opts.tokenPath, 'utf8')).trim();
    } catch (err) {
      throw new MeshletCaSourceError('MESHLET_CA_TOKEN_UNREADABLE', `cannot read the ServiceAccount token ${this.#opts.tokenPath}: ${(err as Error).message}`, { cause: err });
    }
    const method = identityServiceDefinition()['Revocations']!;
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest<{ token: string; known_sha256: string }, RevocationsResponseMessage>(
        REVOCATIONS_METHOD_PATH,
        method.requestSerialize,
        method.responseDeserialize,
        { token, known_sha256: knownSha256 },
        new grpc.Metadata(),
        { deadline: new Date(Date.now() + this.#opts.callTimeoutMs) },
        (err: grpc.ServiceError | null, res?: RevocationsResponseMessage) => {
          if (!err) return resolve(res!);
          const serviceCode = err.metadata?.get('meshlet-error-code')[0];
          reject(new CertifyCallError(err.code, typeof serviceCode === 'string' ? serviceCode : undefined, `Revocations at ${this.#opts.address} failed: ${grpc.status[err.code] ?? String(err.code)}: ${err.details}`, { cause: err }));
        },
      );
    });
  }

  #toSnapshot(res: CertifyResponseMessage, key: KeyObject): IdentitySnapshot {
    const what = `the Certify response from ${this.#opts.address}`;
    try {
      if (res.cert_chain.length === 0 || res.bundle.length === 0) throw new Error('it has no certificate chain or no bundle');
      // buildSnapshot verifies the chain against the bundle exactly as a peer will, and that
      // the key is ours: an SVID no peer would accept must not replace the current one.
      const snapshot = buildSnapshot({
        chainPem: res.cert_chain.map((der) => derToPem(der)).join(''),
        key,
        bundlePem: res.bundle.map((der) => derToPem(der)).join(''),
        what,
      });
      if (snapshot.svid.spiffeId.trustDomain !== this.#opts.trustDomain) {
        throw new Error(`the SVID is for ${snapshot.svid.spiffeId.id}, outside the trust domain ${this.#opts.trustDomain}`);
      }
      return snapshot;
    } catch (err) {
      throw new MeshletCaSourceError('MESHLET_CA_BAD_RESPONSE', `${what} is unusable: ${(err as Error).message}`, { cause: err });
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      t.unref();
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

