import type { ServerHttp2Stream } from 'node:http2';
import { PassThrough } from 'node:stream';
import type { ProxyError } from '../http/errors.ts';
import type { NextHop } from '../http/forward-request.ts';
import type { UpstreamHandler, UpstreamRequest } from '../upstream/upstream.ts';
import { forwardResponseHeaders } from '../http/headers.ts';
import type { StreamFailure } from './forward-stream.ts';
import { h2HeadersFromFlat } from './stream-headers.ts';

/**
 * Forwards one HTTP/2 stream to an HTTP/1.1 next hop (an app on an `http` port) through its
 * HTTP/1.1 pool, through the same Upstream interface as forward-request.ts (upstream.ts): the
 * body streams both ways with backpressure; HTTP/1.1 trailers (rare) are relayed as HTTP/2
 * trailers. Nothing is retried: a stream's body is consumed as it is sent. A failure arrives
 * named by the pool, as for an HTTP/1.1 caller (the same code for the same failure), and is
 * answered as it is.
 */
export function forwardStreamToHttp1(stream: ServerHttp2Stream, hop: NextHop, method: string, path: string, headers: string[], fail: StreamFailure): void {
  const exchange = new StreamExchange(stream, fail, {
    method,
    path,
    headers,
    // The pool gets a pipe of the stream, not the stream: nothing it does to its body (ending
    // it, or destroying it on a failure) can reset the HTTP/2 stream before the error
    // response has been sent.
    body: stream.endAfterHeaders ? null : stream.pipe(new PassThrough()),
  });
  stream.once('close', exchange.onClientClose);
  // 'aborted' comes first, and node may still end the stream's readable side after it: the
  // exchange must stop before the pipe could end a cut body as if it were complete.
  stream.once('aborted', exchange.onClientClose);
  hop.pool.dispatch(exchange.options, exchange);
}

class StreamExchange implements UpstreamHandler {
  readonly options: UpstreamRequest;
  readonly #stream: ServerHttp2Stream;
  readonly #fail: StreamFailure;
  #abort: (() => void) | null = null;
  #resume: (() => void) | null = null;
  #clientGone = false;
  #completed = false;

  constructor(stream: ServerHttp2Stream, fail: StreamFailure, options: UpstreamRequest) {
    this.#stream = stream;
    this.#fail = fail;
    this.options = options;
  }

  readonly onClientClose = (): void => {
    // Not `writableFinished`: node sets it on a stream destroyed by a reset too. The pool ignores
    // an abort that comes after the exchange is over.
    if (this.#completed) return;
    this.#clientGone = true;
    this.#abort?.();
  };

  readonly #onDrain = (): void => {
    this.#resume?.();
  };

  onConnect(abort: () => void): void {
    this.#abort = abort;
    if (this.#clientGone) abort();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true;
    this.#resume = resume;
    this.#stream.respond(h2HeadersFromFlat(statusCode, forwardResponseHeaders(rawHeaders)), { waitForTrailers: true });
    return true;
  }

  onData(chunk: Buffer): boolean {
    const ok = this.#stream.write(chunk);
    if (!ok) this.#stream.once('drain', this.#onDrain);
    return ok;
  }

  onComplete(trailers: string[] | null): void {
    this.#completed = true;
    const stream = this.#stream;
    stream.once('wantTrailers', () => stream.sendTrailers(trailerObject(trailers)));
    stream.end();
  }

  onError(err: ProxyError): void {
    if (this.#clientGone) return;
    this.#fail(this.#stream, err, false);
  }
}

function trailerObject(flat: readonly (string | Buffer)[] | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (flat === null) return out;
  for (let i = 0; i < flat.length; i += 2) out[String(flat[i]).toLowerCase()] = String(flat[i + 1]);
  return out;
}
