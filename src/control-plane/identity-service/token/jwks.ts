import { readFile } from 'node:fs/promises';
import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';
import { CertifyError } from '../errors.ts';
import { parseServiceAccountUsername, type ProvenServiceAccount, type TokenAuthenticator } from './authenticator.ts';

/**
 * Checks a token offline against the cluster's service-account issuer keys (the JWKS the
 * API server publishes at `<issuer>/openid/v1/jwks`, or `/openid/v1/jwks` on the API server):
 * signature, `iss`, `aud` contains our audience, `exp` (required: legacy Secret-based
 * tokens have none and never expire, so they are refused), `nbf`, and the `kubernetes.io`
 * claim for namespace and ServiceAccount, which must agree with `sub`.
 *
 * What it cannot see: a token whose pod was deleted stays valid until it expires. Use
 * mode `both` (JWKS then TokenReview) when that matters.
 */
export interface JwksOptions {
  jwksUrl: string;
  /** The cluster's `--service-account-issuer`, e.g. https://kubernetes.default.svc.cluster.local */
  issuer: string;
  audience: string;
  /** PEM roots for an https JWKS URL served by the API server; default: the system roots. */
  caPem?: string;
  /**
   * A bearer token file sent with the JWKS fetch (the API server's /openid/v1/jwks needs an
   * authenticated caller unless anonymous discovery is enabled). Re-read on each fetch.
   */
  credentialTokenPath?: string;
  /** Seconds of clock skew tolerated on exp/nbf. Default 30 s. */
  clockToleranceSec?: number;
  /** JWKS fetch deadline. Default 5 s. */
  timeoutMs?: number;
}

// Kubernetes signs ServiceAccount tokens with RSA or ECDSA keys; never accept "none" or HMAC.
const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'];

interface KubernetesClaim {
  namespace?: unknown;
  serviceaccount?: { name?: unknown };
  pod?: { name?: unknown };
}

export class JwksAuthenticator implements TokenAuthenticator {
  readonly kind = 'jwks';
  readonly #jwks: ReturnType<typeof createRemoteJWKSet>;
  readonly #issuer: string;
  readonly #audience: string;
  readonly #clockToleranceSec: number;
  readonly #agent: Agent | undefined;

  constructor(options: JwksOptions) {
    this.#issuer = options.issuer;
    this.#audience = options.audience;
    this.#clockToleranceSec = options.clockToleranceSec ?? 30;
    const agent = options.caPem !== undefined ? new Agent({ connect: { ca: options.caPem } }) : undefined;
    this.#agent = agent;
    const tokenPath = options.credentialTokenPath;
    this.#jwks = createRemoteJWKSet(new URL(options.jwksUrl), {
      timeoutDuration: options.timeoutMs ?? 5_000,
      [customFetch]: async (url, init) => {
        const headers: Record<string, string> = Object.fromEntries(init.headers);
        if (tokenPath !== undefined) headers['authorization'] = `Bearer ${(await readFile(tokenPath, 'utf8')).trim()}`;
        const res = await undiciFetch(url, { ...init, headers, ...(agent ? { dispatcher: agent } : {}) });
        return res as unknown as Response;
      },
    });
  }

  async authenticate(token: string): Promise<ProvenServiceAccount> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#jwks, {
        issuer: this.#issuer,
        audience: this.#audience,
        algorithms: ALLOWED_ALGORITHMS,
        clockTolerance: this.#clockToleranceSec,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      throw mapJoseError(err);
    }
    const claim = payload['kubernetes.io'] as KubernetesClaim | undefined;
    const namespace = claim?.namespace;
    const serviceAccount = claim?.serviceaccount?.name;
    if (typeof namespace !== 'string' || typeof serviceAccount !== 'string') {
      throw new CertifyError('IDENTITY_TOKEN_NOT_SERVICE_ACCOUNT', 'the token has no kubernetes.io namespace / serviceaccount claim');
    }
    const fromSub = parseServiceAccountUsername(payload.sub);
    if (fromSub.namespace !== namespace || fromSub.serviceAccount !== serviceAccount) {
      throw new CertifyError('IDENTITY_TOKEN_IDENTITY_MISMATCH', `the token's sub (${payload.sub}) does not match its kubernetes.io claim (${namespace}/${serviceAccount})`);
    }
    const podName = claim?.pod?.name;
    return typeof podName === 'string' ? { namespace, serviceAccount, podName } : { namespace, serviceAccount };
  }

  async close(): Promise<void> {
    await this.#agent?.close();
  }
}

function mapJoseError(err: unknown): CertifyError {
  if (err instanceof joseErrors.JWTExpired) return new CertifyError('IDENTITY_TOKEN_EXPIRED', 'the token has expired', { cause: err });
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const detail = `${err.claim}: ${err.message}`;
    if (err.claim === 'aud') return new CertifyError('IDENTITY_TOKEN_WRONG_AUDIENCE', `the token is not for this audience (${detail})`, { cause: err });
    if (err.claim === 'iss') return new CertifyError('IDENTITY_TOKEN_WRONG_ISSUER', `the token has the wrong issuer (${detail})`, { cause: err });
    if (err.claim === 'nbf') return new CertifyError('IDENTITY_TOKEN_NOT_YET_VALID', 'the token is not valid yet (nbf)', { cause: err });
    return new CertifyError('IDENTITY_TOKEN_INVALID', `the token's claims are invalid (${detail})`, { cause: err });
  }
  if (err instanceof joseErrors.JWKSTimeout) {
    return new CertifyError('IDENTITY_AUTHENTICATOR_UNAVAILABLE', 'timed out fetching the service-account issuer keys (JWKS)', { cause: err });
  }
  if (err instanceof joseErrors.JOSEError) {
    // Bad signature, unknown key, malformed JWS, alg not allowed: the token proves nothing.
    // A non-200 JWKS answer is ERR_JOSE_GENERIC, which is ours to fix, not the caller's.
    if (err.code === 'ERR_JOSE_GENERIC' || err instanceof joseErrors.JWKSInvalid) {
      return new CertifyError('IDENTITY_AUTHENTICATOR_UNAVAILABLE', `cannot use the service-account issuer keys: ${err.message}`, { cause: err });
    }
    return new CertifyError('IDENTITY_TOKEN_INVALID', `the token does not verify (${err.code}: ${err.message})`, { cause: err });
  }
  if (err instanceof CertifyError) return err;
  // fetch failures (connection refused, TLS) surface as plain errors.
  return new CertifyError('IDENTITY_AUTHENTICATOR_UNAVAILABLE', `cannot fetch the service-account issuer keys: ${(err as Error).message}`, { cause: err });
}
