import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { formatRevocationList, type RevocationSet } from '../../data-plane/identity/revocation/revocation-list.ts';
import type { RevocationsResponseMessage } from '../../data-plane/identity/proto/meshlet-identity.ts';
import { CertifyError } from './errors.ts';
import type { TokenAuthenticator } from './token/authenticator.ts';

/**
 * `Revocations`: the identity service publishes the revocation list it enforces
 * (MESHLET_IDENTITY_REVOCATION_LIST) to sidecars that poll it over their Certify channel
 * (MESHLET_REVOCATION_LIST=meshlet-ca; docs/revocation.md "Learning the list from the identity
 * service"). Callers prove themselves with their projected ServiceAccount token, checked by the
 * same authenticator as Certify; a token that authenticated is trusted for this read for
 * TOKEN_TRUST_MS without asking again, so a fleet polling every few seconds costs the API server
 * about one TokenReview per pod per TOKEN_TRUST_MS, not one per poll. The answer is the list
 * only (the caller learns nothing about itself), or nothing when the caller already holds it.
 */
export const TOKEN_TRUST_MS = 5 * 60 * 1000;
/** Tokens remembered at most (the oldest forgotten first): bounds memory under a flood. */
export const TRUSTED_TOKENS_MAX = 10_000;
const MAX_TOKEN_BYTES = 16 * 1024;

export interface RevocationPublisherOptions {
  authenticator: TokenAuthenticator;
  /** The list in force; absent: the service has none (answers enabled: false). */
  list?: { current(): RevocationSet };
  logger?: Logger;
  now?: () => number;
}

export class RevocationPublisher {
  readonly #authenticator: TokenAuthenticator;
  readonly #list: { current(): RevocationSet } | undefined;
  readonly #logger: Logger | undefined;
  readonly #now: () => number;
  /** sha256(token) -> until when it is trusted. */
  readonly #trusted = new Map<string, number>();
  /** The list as sent (canonical JSON) and its sha256, made once per list. */
  readonly #serialized = new WeakMap<RevocationSet, { bytes: Buffer; sha256: string }>();

  constructor(options: RevocationPublisherOptions) {
    this.#authenticator = options.authenticator;
    this.#list = options.list;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
  }

  /** Throws CertifyError (the caller maps it to a gRPC status) when the token proves nothing. */
  async answer(request: { token: unknown; known_sha256: unknown; malformed?: string }, peer = 'unknown'): Promise<RevocationsResponseMessage> {
    try {
      await this.#authenticate(request);
    } catch (err) {
      const refusal = err instanceof CertifyError ? err : new CertifyError('IDENTITY_SIGNING_FAILED', `internal error: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      this.#logger?.warn({ event: 'revocations_refused', code: refusal.code, peer }, refusal.message);
      throw refusal;
    }
    if (this.#list === undefined) return { enabled: false, sha256: '', list: Buffer.alloc(0) };
    const { bytes, sha256 } = this.#serialize(this.#list.current());
    return { enabled: true, sha256, list: request.known_sha256 === sha256 ? Buffer.alloc(0) : bytes };
  }

  async #authenticate(request: { token: unknown; malformed?: string }): Promise<void> {
    if (request.malformed !== undefined) throw new CertifyError('IDENTITY_REQUEST_MALFORMED', `the request is not a RevocationsRequest (${request.malformed})`);
    const token = request.token;
    if (typeof token !== 'string' || token === '') throw new CertifyError('IDENTITY_REQUEST_MALFORMED', 'the request has no token');
    if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) throw new CertifyError('IDENTITY_TOKEN_TOO_LARGE', `the token is longer than ${MAX_TOKEN_BYTES} bytes`);
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.#now();
    const until = this.#trusted.get(key);
    if (until !== undefined && until > now) return;
    this.#trusted.delete(key);
    await this.#authenticator.authenticate(token);
    this.#trusted.set(key, now + TOKEN_TRUST_MS);
    while (this.#trusted.size > TRUSTED_TOKENS_MAX) this.#trusted.delete(this.#trusted.keys().next().value as string);
  }

  #serialize(set: RevocationSet): { bytes: Buffer; sha256: string } {
    let out = this.#serialized.get(set);
    if (out === undefined) {
      const bytes = Buffer.from(formatRevocationList(set.entries), 'utf8');
      out = { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
      this.#serialized.set(set, out);
    }
    return out;
  }
}
