import type * as http from 'node:http';
import { ClosedBeforeResponse, type Upstream, type UpstreamHandler, type UpstreamRequest } from '../upstream/upstream.ts';
import type { TrackedConnection } from '../connection-registry.ts';
import type { UpstreamObserver } from '../request-observation.ts';
import type { ForwardedHead } from './headers.ts';
import { forwardResponseHeaders } from './headers.ts';
import type { ProxyError } from './errors.ts';

/** Where one request goes: the pool of the next hop. */
export interface NextHop {
  readonly pool: Upstream;
  /** For error messages: "app port 8080", "peer sidecar 10.0.0.7:15006 for orders:80 (spiffe://…)". */
  readonly label: string;
}

/** The proxy a forwarded request belongs to (implemented by the proxy object itself: no per-request allocation). */
export interface ForwardingProxy {
  /** Asked when the response head is about to go to the client: true adds `connection: close` (drain). */
  closeAfterResponse(): boolean;
  /** Answers the client with the error response (and counts it). */
  fail(res: http.ServerResponse, err: ProxyError): void;
}

// RFC 9110 §9.2.2: only these may be sent twice without changing the outcome.
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Forwards one parsed request to `hop` and streams the response back.
 *
 * Why meshlet's Upstream interface — dispatch() with a handler object (upstream.ts), served by
 * meshlet's own Http1Pool — rather than http.request: measured on the hop bench (docs/proxy.md), the
 * per-request cost of the client leg was the largest part of the sidecar's CPU. dispatch()
 * takes a plain handler — no ClientRequest, no response stream object, no promise — and this
 * handler writes straight into node:http's ServerResponse with backpressure (onData returns
 * false when the client is slow; the pool stops reading until 'drain').
 *
 * The response socket is corked from the response head until the end of the tick, so a
 * head and a body that arrive together leave in ONE write (one TLS record, one segment)
 * instead of two.
 *
 * A bodiless idempotent request whose pooled connection closes before any response (the
 * app closed its idle keep-alive socket as we picked it: the pool names it a
 * ClosedBeforeResponse) is retried once on a fresh connection; nothing else is ever retried.
 * Every failure arrives already named as the ProxyError the client is to see (by the pool,
 * the connector, the response parser): this only answers with it.
 */
export function forwardRequest(req: http.IncomingMessage, res: http.ServerResponse, hop: NextHop, path: string, head: ForwardedHead, proxy: ForwardingProxy, observer: UpstreamObserver | null = null): void {
  const hasBody = head.chunked || (head.contentLength !== '' && head.contentLength !== '0');
  const exchange = new Exchange(res, hop, proxy, observer, {
    path,
    method: req.method ?? 'GET',
    headers: head.headers,
    // node:http has de-chunked the body; the pool frames it again (Content-Length kept, else chunked).
    body: hasBody ? req : null,
  });
  res.once('close', exchange.onClientClose);
  hop.pool.dispatch(exchange.options, exchange);
}

class Exchange implements UpstreamHandler {
  readonly options: UpstreamRequest;
  readonly #res: http.ServerResponse;
  readonly #hop: NextHop;
  readonly #proxy: ForwardingProxy;
  /** Outbound: hears which next-hop connection carries the request (its verified server identity labels it). */
  readonly #observer: UpstreamObserver | null;
  #abort: (() => void) | null = null;
  #resume: (() => void) | null = null;
  #retried = false;
  #clientGone = false;

  constructor(res: http.ServerResponse, hop: NextHop, proxy: ForwardingProxy, observer: UpstreamObserver | null, options: UpstreamRequest) {
    this.#res = res;
    this.#hop = hop;
    this.#proxy = proxy;
    this.#observer = observer;
    this.options = options;
  }

  /** The client went away before its response finished: stop the upstream exchange too. */
  readonly onClientClose = (): void => {
    if (this.#res.writableFinished) return;
    this.#clientGone = true;
    this.#abort?.();
  };

  readonly #onDrain = (): void => {
    this.#resume?.();
  };

  onConnect(abort: () => void, upstream?: TrackedConnection): void {
    this.#abort = abort;
    if (upstream !== undefined) this.#observer?.upstreamConnected(upstream);
    if (this.#clientGone) abort();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx informational responses are not forwarded (node:http answered 100-continue itself).
    if (statusCode < 200) return true;
    this.#resume = resume;
    const res = this.#res;
    const headers = forwardResponseHeaders(rawHeaders);
    if (this.#proxy.closeAfterResponse()) headers.push('connection', 'close');
    res.writeHead(statusCode, headers);
    res.cork();
    process.nextTick(uncork, res);
    return true;
  }

  onData(chunk: Buffer): boolean {
    const ok = this.#res.write(chunk);
    if (!ok) this.#res.once('drain', this.#onDrain);
    return ok;
  }

  onComplete(): void {
    this.#res.end();
  }

  onError(err: ProxyError): void {
    const res = this.#res;
    if (this.#clientGone) return;
    if (res.headersSent) {
      // The next hop died mid-body: a truncated body must never look complete. An idle
      // timeout is the sidecar's own decision, so it is counted (respondWithError cuts too).
      if (err.code === 'MESHLET_UPSTREAM_TIMEOUT' || err.code === 'MESHLET_REQUEST_TIMEOUT') this.#proxy.fail(res, err);
      else res.destroy();
      return;
    }
    if (!this.#retried && err instanceof ClosedBeforeResponse && this.options.body === null && IDEMPOTENT.has(this.options.method)) {
      this.#retried = true;
      this.#hop.pool.dispatch(this.options, this);
      return;
    }
    this.#proxy.fail(res, err);
  }
}

function uncork(res: http.ServerResponse): void {
  res.uncork();
}
