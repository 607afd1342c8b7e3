import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MeshletError } from '../../common/errors/meshlet-error.ts';
import { ConnectionGuard } from '../../common/net/connection-guard.ts';

/**
 * The injector's HTTPS admission webhook server: a route table of admission handlers
 * (`/validate` now, `/mutate` plugs in the same way), each taking the `request` of an
 * admission.k8s.io/v1 AdmissionReview and returning the body of its `response`; the server
 * adds `uid`, `apiVersion` and `kind`, so no handler can answer with the wrong uid (which the
 * apiserver would reject).
 *
 * It never hangs and never crashes on input: bodies are capped (413), malformed JSON or a
 * review without `request.uid` is a 400 with a message, a slow client is cut off by the
 * request timeout, and a handler that throws becomes a 500 with the error's code.
 *
 * Nor can it be exhausted by connections that never get anywhere (src/common/net/connection-guard.ts):
 * a TLS handshake must end within `handshakeTimeoutMs` and the request head arrive within the
 * request timeout, or the connection is closed; at most `maxConnections` are open at once.
 */
export interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  resource?: { group?: string; version?: string; resource?: string };
  operation?: string;
  namespace?: string;
  name?: string;
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
}

export interface AdmissionResponseBody {
  allowed: boolean;
  status?: { code?: number; reason?: string; message?: string };
  warnings?: string[];
  patchType?: 'JSONPatch';
  patch?: string;
}

export type AdmissionHandler = (request: AdmissionRequest) => AdmissionResponseBody | Promise<AdmissionResponseBody>;

export interface WebhookServerOptions {
  /** PEM serving certificate (with a SAN for <service>.<namespace>.svc) and key. */
  cert: string | Buffer;
  key: string | Buffer;
  /** Path -> handler, e.g. { '/validate': validatePolicyConfigMap }. */
  routes: Readonly<Record<string, AdmissionHandler>>;
  /** Largest request body accepted; the apiserver caps objects at about 3 MiB. Default 3 MiB. */
  maxBodyBytes?: number;
  /** Whole-request deadline; the apiserver gives a webhook at most 30 s. Default 10 s. */
  requestTimeoutMs?: number;
  /** TLS handshake deadline from accept. Default WEBHOOK_HANDSHAKE_TIMEOUT_MS. */
  handshakeTimeoutMs?: number;
  /** Cap and refusal counting (src/common/net/connection-guard.ts); default WEBHOOK_MAX_CONNECTIONS, not counted. */
  guard?: ConnectionGuard;
}

/** The apiserver keeps a few keep-alive connections to a webhook; this leaves ample room. */
export const WEBHOOK_MAX_CONNECTIONS = 256;
export const WEBHOOK_HANDSHAKE_TIMEOUT_MS = 10_000;
/** The apiserver caps objects at about 3 MiB. */
export const WEBHOOK_MAX_BODY_BYTES = 3 * 1024 * 1024;
/** The apiserver gives a webhook at most 30 s. */
export const WEBHOOK_REQUEST_TIMEOUT_MS = 10_000;

export class WebhookRequestError extends MeshletError {
  readonly status: number;
  constructor(code: 'WEBHOOK_BAD_JSON' | 'WEBHOOK_NO_REQUEST' | 'WEBHOOK_BODY_TOO_LARGE' | 'WEBHOOK_UNSUPPORTED_MEDIA_TYPE', status: number, message: string) {
    super(code, message);
    this.status = status;
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new WebhookRequestError('WEBHOOK_BODY_TOO_LARGE', 413, `request body of ${declared} bytes exceeds the limit of ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new WebhookRequestError('WEBHOOK_BODY_TOO_LARGE', 413, `request body exceeds the limit of ${limit} bytes`));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function parseAdmissionReview(body: Buffer): AdmissionRequest {
  let review: unknown;
  try {
    review = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new WebhookRequestError('WEBHOOK_BAD_JSON', 400, `the body is not valid JSON: ${(err as Error).message}`);
  }
  const request = (review as { request?: unknown } | null)?.request;
  if (typeof review !== 'object' || review === null || typeof request !== 'object' || request === null) {
    throw new WebhookRequestError('WEBHOOK_NO_REQUEST', 400, 'the body is not an AdmissionReview with a "request"');
  }
  const uid = (request as { uid?: unknown }).uid;
  if (typeof uid !== 'string' || uid === '') throw new WebhookRequestError('WEBHOOK_NO_REQUEST', 400, 'the AdmissionReview request has no "uid"');
  return request as AdmissionRequest;
}

export function createWebhookServer(options: WebhookServerOptions): Server {
  const limit = options.maxBodyBytes ?? WEBHOOK_MAX_BODY_BYTES;
  const timeout = options.requestTimeoutMs ?? WEBHOOK_REQUEST_TIMEOUT_MS;
  const server = createServer(
    {
      cert: options.cert,
      key: options.key,
      minVersion: 'TLSv1.2',
      handshakeTimeout: options.handshakeTimeoutMs ?? WEBHOOK_HANDSHAKE_TIMEOUT_MS,
      ...ConnectionGuard.httpServerOptions(Math.min(timeout, 60_000)),
    },
    (req, res) => {
      void handle(req, res);
    },
  );
  (options.guard ?? new ConnectionGuard({ listener: 'webhook', maxConnections: WEBHOOK_MAX_CONNECTIONS })).protectHttp(server);
  server.requestTimeout = timeout;
  // An idle or trickling connection is dropped too, not only a slow request.
  server.setTimeout(timeout, (socket) => socket.destroy());

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/healthz' && req.method === 'GET') return send(res, 200, 'ok');
    const handler = Object.hasOwn(options.routes, path) ? options.routes[path] : undefined;
    if (!handler) return send(res, 404, { error: 'not_found', message: `no webhook at ${path}; routes: ${Object.keys(options.routes).join(', ')}` });
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return send(res, 405, { error: 'method_not_allowed', message: `${path} accepts POST only` });
    }
    try {
      const type = req.headers['content-type'] ?? '';
      if (!/^application\/json\b/i.test(type)) {
        throw new WebhookRequestError('WEBHOOK_UNSUPPORTED_MEDIA_TYPE', 415, `content-type must be application/json (got ${JSON.stringify(type)})`);
      }
      const request = parseAdmissionReview(await readBody(req, limit));
      const response = await handler(request);
      send(res, 200, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { ...response, uid: request.uid } });
    } catch (err) {
      if (err instanceof WebhookRequestError) {
        if (err.status === 413) res.setHeader('connection', 'close');
        return send(res, err.status, { error: err.code, message: err.message });
      }
      const code = err instanceof MeshletError ? err.code : 'WEBHOOK_INTERNAL';
      send(res, 500, { error: code, message: (err as Error).message });
    }
  }
  return server;
}
