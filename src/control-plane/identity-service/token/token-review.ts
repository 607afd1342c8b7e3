import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { CertifyError } from '../errors.ts';
import { parseServiceAccountUsername, type ProvenServiceAccount, type TokenAuthenticator } from './authenticator.ts';

/**
 * Checks a token with the Kubernetes API server:
 * `POST /apis/authentication.k8s.io/v1/tokenreviews` with `spec.audiences = [audience]`.
 * The API server checks signature, expiry, audience and — for a pod-bound projected token
 * — that the pod still exists. We then insist on what the answer must say ourselves:
 * `status.authenticated`, our audience in `status.audiences` (an API server that ignores
 * spec.audiences would otherwise accept any token of the cluster), and a ServiceAccount
 * username.
 *
 * RBAC: the identity service's ServiceAccount needs `create` on `tokenreviews`
 * (ClusterRole system:auth-delegator grants it).
 */
export interface TokenReviewOptions {
  /** e.g. https://kubernetes.default.svc */
  apiServerUrl: string;
  /** PEM roots to verify the API server with (the pod's serviceaccount/ca.crt). */
  caPem: string;
  /**
   * The service's own credential, read on EVERY review: kubelet rotates projected tokens
   * in place (about hourly), so a token cached at start would expire under us.
   */
  credentialTokenPath: string;
  /** The audience Certify tokens must carry. */
  audience: string;
  /** Per-review deadline. Default 5 s. */
  timeoutMs?: number;
}

const MAX_REVIEW_RESPONSE_BYTES = 64 * 1024;

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; extra?: Record<string, string[] | undefined> };
  audiences?: string[];
  error?: string;
}

export class TokenReviewAuthenticator implements TokenAuthenticator {
  readonly kind = 'token-review';
  readonly #url: string;
  readonly #credentialTokenPath: string;
  readonly #audience: string;
  readonly #timeoutMs: number;
  readonly #agent: Agent;

  constructor(options: TokenReviewOptions) {
    this.#url = new URL('/apis/authentication.k8s.io/v1/tokenreviews', options.apiServerUrl).toString();
    this.#credentialTokenPath = options.credentialTokenPath;
    this.#audience = options.audience;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#agent = new Agent({ connect: { ca: options.caPem }, connections: 8 });
  }

  async authenticate(token: string): Promise<ProvenServiceAccount> {
    const status = await this.#review(token);
    if (status.authenticated !== true) {
      // The API server folds expiry, bad signature and wrong audience into one `error` string.
      const why = typeof status.error === 'string' && status.error !== '' ? status.error : 'not authenticated';
      const code = /expired/i.test(why) ? 'IDENTITY_TOKEN_EXPIRED' : /audience/i.test(why) ? 'IDENTITY_TOKEN_WRONG_AUDIENCE' : 'IDENTITY_TOKEN_INVALID';
      throw new CertifyError(code, `the API server did not authenticate the token: ${why}`);
    }
    if (!Array.isArray(status.audiences) || !status.audiences.includes(this.#audience)) {
      throw new CertifyError('IDENTITY_TOKEN_WRONG_AUDIENCE', `the token is not for the audience ${JSON.stringify(this.#audience)} (TokenReview audiences: ${JSON.stringify(status.audiences ?? [])})`);
    }
    const { namespace, serviceAccount } = parseServiceAccountUsername(status.user?.username);
    const podName = status.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    return podName === undefined ? { namespace, serviceAccount } : { namespace, serviceAccount, podName };
  }

  async #review(token: string): Promise<TokenReviewStatus> {
    let credential: string;
    try {
      credential = (await readFile(this.#credentialTokenPath, 'utf8')).trim();
    } catch (err) {
      throw new CertifyError('IDENTITY_AUTHENTICATOR_UNAVAILABLE', `cannot read the service's own API token ${this.#credentialTokenPath}: ${(err as Error).message}`, { cause: err });
    }
    const body = JSON.stringify({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, audiences: [this.#audience] },
    });
    let res;
    try {
      res = await request(this.#url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json', accept: 'application/json' },
        body,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      });
    } catch (err) {
      throw new CertifyError('IDENTITY_AUTHENTICATOR_UNAVAILABLE', `TokenReview request to ${this.#url} failed: ${(err as Error).message}`, { cause: err });
    }
    const text = await readCapped(res.body, MAX_REVIEW_RESPONSE_BYTES);
    if (res.statusCode !== 201 && res.statusCode !== 200) {
      // 401/403 here mean OUR credential or RBAC is wrong, not the caller's token: the caller may retry later.
      throw new CertifyError('IDENTITY_AUTHENTICATOR_UNAVAILABLE', `TokenReview answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
    }
    let parsed: { status?: TokenReviewStatus };
    try {
      parsed = JSON.parse(text) as { status?: TokenReviewStatus };
    } catch (err) {
      throw new CertifyError('IDENTITY_AUTHENTICATOR_UNAVAILABLE', 'TokenReview answered with a body that is not JSON', { cause: err });
    }
    if (typeof parsed !== 'object' || parsed === null || typeof parsed.status !== 'object' || parsed.status === null) {
      throw new CertifyError('IDENTITY_AUTHENTICATOR_UNAVAILABLE', 'TokenReview answered without a status');
    }
    return parsed.status;
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

async function readCapped(body: AsyncIterable<Buffer>, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) throw new CertifyError('IDENTITY_AUTHENTICATOR_UNAVAILABLE', `TokenReview response is larger than ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
