import type { Logger } from 'pino';
import { signSvid, type CertificateAuthority } from './ca.ts';
import { pemCertificatesToDer } from '../../data-plane/identity/pem.ts';
import { workloadSpiffeId } from '../../common/identity/spiffe-id.ts';
import { checkCsrNames, parseAndVerifyCsr } from './csr-check.ts';
import { CertifyError } from './errors.ts';
import { noCertifyMetrics, type CertifyMetrics } from './metrics.ts';
import type { TokenBucketLimiter } from './rate-limit.ts';
import type { TokenAuthenticator } from './token/authenticator.ts';

/**
 * The Certify decision, independent of gRPC: check the request, authenticate the token,
 * derive the SPIFFE ID from what the token proves, rate-limit per identity, check the CSR
 * asks for nothing else, sign. Every refusal is logged and counted HERE, once.
 *
 * Order matters: the checks that cost nothing and need no outside party (sizes, CSR
 * parse, key type, self-signature) run before the token goes to the API server, so
 * garbage never costs a TokenReview round trip.
 */
export interface CertifyLimits {
  /** Longest token accepted, bytes. Kubernetes projected tokens are 1–2 KiB. Default 16 KiB. */
  maxTokenBytes: number;
  /** Largest CSR accepted, bytes. A P-256 CSR is about 250–500 bytes. Default 8 KiB. */
  maxCsrBytes: number;
  /**
   * Certify calls being worked on at once; beyond it a call is refused at once with
   * UNAVAILABLE (IDENTITY_OVERLOADED) so clients back off, instead of queueing work (and
   * TokenReview calls) without bound when a whole cluster restarts at once. Default 256.
   */
  maxInFlight: number;
}

export const DEFAULT_CERTIFY_LIMITS: Readonly<CertifyLimits> = Object.freeze({ maxTokenBytes: 16 * 1024, maxCsrBytes: 8 * 1024, maxInFlight: 256 });

export interface CertifierOptions {
  /** The signing CA (the in-cluster intermediate). A function, so the caller may swap it. */
  ca: CertificateAuthority | (() => CertificateAuthority);
  authenticator: TokenAuthenticator;
  /** Lifetime of issued SVIDs. */
  svidTtlMs: number;
  rateLimiter?: TokenBucketLimiter;
  limits?: Partial<CertifyLimits>;
  metrics?: CertifyMetrics;
  logger?: Logger;
  /**
   * The revocation list in force (MESHLET_IDENTITY_REVOCATION_LIST, docs/revocation.md): an
   * identity it names gets no SVID (IDENTITY_REVOKED, PERMISSION_DENIED). Absent: no check.
   */
  revoked?: { has(spiffeId: string): boolean };
}

export interface CertifyInput {
  token: unknown;
  csr: unknown;
  /** Set by the transport when the bytes did not decode as a request: why. */
  malformed?: string;
}

export interface CertifyResult {
  spiffeId: string;
  /** DER, leaf first, then intermediates. */
  certChain: Buffer[];
  /** DER roots of the trust domain. */
  bundle: Buffer[];
  notAfter: Date;
}

export class Certifier {
  readonly #ca: () => CertificateAuthority;
  readonly #authenticator: TokenAuthenticator;
  readonly #svidTtlMs: number;
  readonly #rateLimiter: TokenBucketLimiter | undefined;
  readonly #limits: CertifyLimits;
  readonly #metrics: CertifyMetrics;
  readonly #logger: Logger | undefined;
  readonly #revoked: { has(spiffeId: string): boolean } | undefined;
  #bundleFor: { pem: string; der: Buffer[] } = { pem: '', der: [] };
  #inFlight = 0;

  constructor(options: CertifierOptions) {
    const ca = options.ca;
    this.#ca = typeof ca === 'function' ? ca : () => ca;
    this.#authenticator = options.authenticator;
    this.#svidTtlMs = options.svidTtlMs;
    this.#rateLimiter = options.rateLimiter;
    this.#limits = { ...DEFAULT_CERTIFY_LIMITS, ...options.limits };
    this.#metrics = options.metrics ?? noCertifyMetrics;
    this.#logger = options.logger;
    this.#revoked = options.revoked;
  }

  /** Issues an SVID or throws CertifyError. `peer` (the caller's address) is for logs only. */
  async certify(input: CertifyInput, peer = 'unknown'): Promise<CertifyResult> {
    let identity: string | undefined;
    let admitted = false;
    try {
      if (this.#inFlight >= this.#limits.maxInFlight) {
        throw new CertifyError('IDENTITY_OVERLOADED', `the identity service is busy (${this.#limits.maxInFlight} requests in flight); retry with backoff`);
      }
      this.#inFlight++;
      admitted = true;
      const { token, csr } = this.#checkShape(input);
      const parsed = await parseAndVerifyCsr(csr);
      const proven = await this.#authenticator.authenticate(token);
      const ca = this.#ca();
      try {
        identity = workloadSpiffeId(ca.trustDomain, proven.namespace, proven.serviceAccount).id;
      } catch (err) {
        throw new CertifyError('IDENTITY_TOKEN_NOT_SERVICE_ACCOUNT', `the token's ServiceAccount ${proven.namespace}/${proven.serviceAccount} does not make a valid SPIFFE ID (${(err as Error).message})`, { cause: err });
      }
      // Before the rate limiter: a revoked identity's retries must not use up anything.
      if (this.#revoked?.has(identity)) {
        throw new CertifyError('IDENTITY_REVOKED', `${identity} is revoked (revocation list): the identity service issues it no SVID until it is removed from the list`);
      }
      if (this.#rateLimiter) {
        const decision = this.#rateLimiter.take(identity);
        if (!decision.allowed) {
          throw new CertifyError('IDENTITY_RATE_LIMITED', `too many certificate requests for ${identity}; retry in ${Math.ceil(decision.retryAfterMs / 1000)} s`);
        }
      }
      checkCsrNames(parsed.csr, identity);
      let signed;
      try {
        signed = await signSvid(ca, { spiffeId: identity, publicKey: parsed.checked.publicKey, ttlMs: this.#svidTtlMs });
      } catch (err) {
        throw new CertifyError('IDENTITY_SIGNING_FAILED', `signing failed: ${(err as Error).message}`, { cause: err });
      }
      this.#metrics.onIssued();
      this.#logger?.info({ event: 'svid_issued', spiffeId: identity, pod: proven.podName, peer, notAfter: signed.notAfter.toISOString() }, 'issued an X.509-SVID');
      return { spiffeId: identity, certChain: pemCertificatesToDer(signed.certChainPem), bundle: this.#bundleDer(ca.bundlePem), notAfter: signed.notAfter };
    } catch (err) {
      const refusal =
        err instanceof CertifyError ? err : new CertifyError('IDENTITY_SIGNING_FAILED', `internal error: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      this.#metrics.onRefused(refusal.reason);
      // Never log the token: it is a bearer credential until it expires.
      const log = { event: 'svid_refused', code: refusal.code, reason: refusal.reason, spiffeId: identity, peer };
      if (refusal.reason === 'internal' || refusal.reason === 'authenticator_unavailable' || refusal.reason === 'overloaded') this.#logger?.error(log, refusal.message);
      else this.#logger?.warn(log, refusal.message);
      throw refusal;
    } finally {
      if (admitted) this.#inFlight--;
    }
  }

  #checkShape(input: CertifyInput): { token: string; csr: Uint8Array } {
    const { token, csr, malformed } = input;
    if (malformed !== undefined) throw new CertifyError('IDENTITY_REQUEST_MALFORMED', `the request is not a CertifyRequest (${malformed})`);
    if (typeof token !== 'string' || token === '') throw new CertifyError('IDENTITY_REQUEST_MALFORMED', 'the request has no token');
    if (!(csr instanceof Uint8Array) || csr.length === 0) throw new CertifyError('IDENTITY_REQUEST_MALFORMED', 'the request has no CSR');
    if (Buffer.byteLength(token) > this.#limits.maxTokenBytes) {
      throw new CertifyError('IDENTITY_TOKEN_TOO_LARGE', `the token is longer than ${this.#limits.maxTokenBytes} bytes`);
    }
    if (csr.length > this.#limits.maxCsrBytes) throw new CertifyError('IDENTITY_CSR_TOO_LARGE', `the CSR is larger than ${this.#limits.maxCsrBytes} bytes`);
    return { token, csr };
  }

  #bundleDer(pem: string): Buffer[] {
    if (this.#bundleFor.pem !== pem) this.#bundleFor = { pem, der: pemCertificatesToDer(pem) };
    return this.#bundleFor.der;
  }
}
