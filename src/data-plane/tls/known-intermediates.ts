import { X509Certificate } from 'node:crypto';

/** Intermediates kept at most (a mesh has a handful: one or two per trust domain and CA rotation). */
export const KNOWN_INTERMEDIATES_MAX = 64;

/**
 * Intermediate CA certificates seen in peer chains that verified, for the inbound side of a
 * resumed session. A TLS 1.3 session keeps the client's leaf but not the intermediates it
 * presented, and a resumed handshake presents no certificate, so the server's view of a resumed
 * caller is the leaf alone; with SVIDs issued by an intermediate (the production set-up) that
 * leaf does not chain to a root by itself. This pool links it again: leaf -> the known
 * intermediate that issued it -> ... The result is verified like any presented chain
 * (verifyPeerChain against the CURRENT bundle of the leaf's trust domain), so a pool entry is a
 * path candidate, never a trust anchor. Bounded; least recently used dropped first.
 */
export class KnownIntermediates {
  /** By DER (base64), most recently used last. */
  readonly #certs = new Map<string, { der: Buffer; cert: X509Certificate }>();
  readonly #max: number;

  constructor(max = KNOWN_INTERMEDIATES_MAX) {
    this.#max = max;
  }

  /** Remembers the intermediates of a chain that verified (leaf first; the leaf itself is skipped). */
  learn(chain: readonly Buffer[]): void {
    for (let i = 1; i < chain.length; i++) {
      const der = chain[i]!;
      const key = der.toString('base64');
      const known = this.#certs.get(key);
      this.#certs.delete(key);
      this.#certs.set(key, known ?? { der, cert: new X509Certificate(der) });
    }
    while (this.#certs.size > this.#max) this.#certs.delete(this.#certs.keys().next().value as string);
  }

  /**
   * `chain` (leaf first) extended with the known intermediates that issued its last
   * certificate, then theirs, until none is known or a certificate is self-issued. The issuer is
   * found by name; only when several known CAs share that name is the signature checked here to
   * pick one (the caller's verification checks every signature of the result anyway, from its
   * own cache, so the common case costs no signature verification here).
   */
  complete(chain: readonly Buffer[], maxLength: number): Buffer[] {
    const out = [...chain];
    if (out.length === 0 || this.#certs.size === 0) return out;
    let current: X509Certificate;
    try {
      current = new X509Certificate(out[out.length - 1]!);
    } catch {
      return out;
    }
    while (out.length < maxLength && current.issuer !== current.subject) {
      const named: { der: Buffer; cert: X509Certificate }[] = [];
      for (const candidate of this.#certs.values()) {
        if (candidate.cert.subject === current.issuer && !out.some((c) => c.equals(candidate.der))) named.push(candidate);
      }
      const child = current;
      const found = named.length === 1 ? named[0] : named.find((c) => child.checkIssued(c.cert) && child.verify(c.cert.publicKey));
      if (found === undefined) break;
      out.push(found.der);
      current = found.cert;
    }
    return out;
  }

  get size(): number {
    return this.#certs.size;
  }
}
