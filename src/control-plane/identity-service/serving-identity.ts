import { ServerCredentials } from '@grpc/grpc-js';
import type { SecureContextOptions } from 'node:tls';
import { issueSvid, type CertificateAuthority } from './ca.ts';

/**
 * gRPC server credentials whose certificate can change under a running server.
 * grpc-js calls setSecureContext on its http2 server for every update (the same hook its
 * own certificate providers use), so new handshakes get the new certificate while open
 * connections keep theirs. TLS 1.3 only, like every other meshlet listener.
 */
export class RotatingServerCredentials extends ServerCredentials {
  constructor(initial: { certChainPem: string; keyPem: string }) {
    super({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, toContext(initial));
  }

  update(next: { certChainPem: string; keyPem: string }): void {
    this.updateSecureContextOptions(toContext(next));
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

function toContext(pair: { certChainPem: string; keyPem: string }): SecureContextOptions {
  return { cert: pair.certChainPem, key: pair.keyPem };
}

/**
 * The identity service's own serving certificate, issued by its own CA: an X.509-SVID for
 * `servingSpiffeId` (default spiffe://<td>/ns/meshlet-system/sa/meshlet-identity). Clients
 * verify it with the mesh roots and check that SPIFFE ID — no DNS name needed, so the
 * Service may be reached by any name. Re-issued at half its lifetime.
 */
export class SelfIssuedServingIdentity {
  readonly credentials: RotatingServerCredentials;
  readonly #ca: CertificateAuthority;
  readonly #spiffeId: string;
  readonly #ttlMs: number;
  readonly #onError: (err: Error) => void;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(ca: CertificateAuthority, spiffeId: string, ttlMs: number, first: { certChainPem: string; keyPem: string; notAfter: Date; notBefore: Date }, onError: (err: Error) => void) {
    this.#ca = ca;
    this.#spiffeId = spiffeId;
    this.#ttlMs = ttlMs;
    this.#onError = onError;
    this.credentials = new RotatingServerCredentials(first);
    this.#schedule(first.notBefore, first.notAfter);
  }

  static async create(ca: CertificateAuthority, opts: { spiffeId: string; ttlMs: number; onError?: (err: Error) => void }): Promise<SelfIssuedServingIdentity> {
    const first = await issueSvid(ca, { spiffeId: opts.spiffeId, ttlMs: opts.ttlMs });
    return new SelfIssuedServingIdentity(ca, opts.spiffeId, opts.ttlMs, { ...first, keyPem: first.privateKeyPem }, opts.onError ?? (() => {}));
  }

  #schedule(notBefore: Date, notAfter: Date): void {
    if (this.#closed) return;
    // Half of what is left, not of notAfter - notBefore: the CA backdates notBefore.
    const now = Date.now();
    const delay = Math.max(1_000, (notAfter.getTime() - Math.max(now, notBefore.getTime())) / 2);
    this.#timer = setTimeout(() => void this.#renew(), delay);
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    try {
      const next = await issueSvid(this.#ca, { spiffeId: this.#spiffeId, ttlMs: this.#ttlMs });
      if (this.#closed) return;
      this.credentials.update({ certChainPem: next.certChainPem, keyPem: next.privateKeyPem });
      this.#schedule(next.notBefore, next.notAfter);
    } catch (err) {
      this.#onError(err as Error);
      // Signing locally only fails if the CA itself is broken; try again in a minute.
      if (!this.#closed) {
        this.#timer = setTimeout(() => void this.#renew(), 60_000);
        this.#timer.unref();
      }
    }
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
