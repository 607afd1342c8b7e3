import type { ServerHttp2Stream } from 'node:http2';
import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ProxyError } from '../http/errors.ts';
import type { NextHop } from '../http/forward-request.ts';
import { forwardResponseHeaders } from '../http/headers.ts';
import type { StreamFailure } from './forward-stream.ts';
import { h2HeadersFromFlat } from './stream-headers.ts';

/**
 * Forwards one HTTP/2 stream to an HTTP/1.1 next hop (an app on an `http` port) through its
 * HTTP/1.1 pool, with the same dispatch-handler approach as forward-request.ts: the body
 * streams both ways with backpressure; HTTP/1.1 trailers (rare) are relayed as HTTP/2
 * trailers. Nothing is retried: a stream's body is consumed as it is sent.
 */
export function forwardStreamToHttp1(stream: ServerHttp2Stream, hop: NextHop, method: string, path: string, headers: string[], fail: StreamFailure): void {
  const exchange = new StreamExchange(stream, hop, fail, {
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

class StreamExchange implements Dispatcher.DispatchHandler {
  readonly options: Dispatcher.DispatchOptions;
  readonly #stream: ServerHttp2Stream;
  readonly #hop: NextHop;
  readonly #fail: StreamFailure;
  #abort: ((err?: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #clientGone = false;
  #completed = false;

  constructor(stream: ServerHttp2Stream, hop: NextHop, fail: StreamFailure, options: Dispatcher.DispatchOptions) {
    this.#stream = stream;
    this.#hop = hop;
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

  onConnect(abort: (err?: Error) => void): void {
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

  onError(err: Error): void {
    if (this.#clientGone) return;
    const code = String((err as { code?: unknown }).code ?? '');
    const perr = err instanceof ProxyError ? err : new ProxyError('MESHLET_UPSTREAM_RESET', `${this.#hop.label} closed the connection before responding: ${code || err.message}`, { cause: err });
    this.#fail(this.#stream, perr, false);
  }
}

function trailerObject(flat: readonly (string | Buffer)[] | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (flat === null) return out;
  for (let i = 0; i < flat.length; i += 2) out[String(flat[i]).toLowerCase()] = String(flat[i + 1]);
  return out;
}
