import * as net from 'node:net';
import { LatencyHistogram } from './latency-histogram.ts';

/**
 * The microsecond-resolution latency probe that runs beside autocannon's load. One keep-alive
 * connection, one request in flight, each timed with process.hrtime.bigint() from the write of
 * the request to the last byte of the body. The request bytes are built once and the response
 * is only framed (status, Content-Length or the chunked terminator), never fully parsed, so the
 * probe's own cost stays small and — more importantly — the same for every target: it cancels
 * out of "target minus direct".
 */
export interface HttpEndpoint {
  host: string;
  port: number;
  /** The Host header: the mesh routes by it ("upstream:80"). */
  hostHeader: string;
  path: string;
}

export interface SamplerResult {
  histogram: LatencyHistogram;
  errors: number;
  /** Non-200 statuses seen (a denial or a 502 is an error, never a latency sample). */
  badStatus: number;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CHUNKED_END = Buffer.from('\r\n0\r\n\r\n');
const EMPTY_CHUNKED_BODY = Buffer.from('0\r\n\r\n');

/** The last-chunk marker ends the body (no trailers: neither upstream sends any). */
function chunkedComplete(buf: Buffer, bodyStart: number): boolean {
  const body = buf.length - bodyStart;
  if (body === EMPTY_CHUNKED_BODY.length) return buf.subarray(bodyStart).equals(EMPTY_CHUNKED_BODY);
  return body > CHUNKED_END.length && buf.subarray(buf.length - CHUNKED_END.length).equals(CHUNKED_END);
}

/**
 * One HTTP/1.1 response read off a keep-alive socket chunk by chunk: `push` says when its
 * last body byte is in (Content-Length, chunked, or no body). Enough for the bench's own
 * upstreams, not a general parser.
 */
export class ResponseReader {
  status = 0;
  #buf: Buffer | null = null;
  #bodyStart = -1;
  #contentLength = -1;
  #chunked = false;

  push(chunk: Buffer): boolean {
    const buf = (this.#buf = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]));
    if (this.#bodyStart < 0) {
      const end = buf.indexOf(HEADER_END);
      if (end < 0) return false;
      this.#bodyStart = end + 4;
      const head = buf.toString('latin1', 0, end);
      this.status = Number(head.slice(9, 12));
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (cl) this.#contentLength = Number(cl[1]);
      else this.#chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
      if (!cl && !this.#chunked) this.#contentLength = 0;
    }
    const complete = this.#chunked ? chunkedComplete(buf, this.#bodyStart) : buf.length - this.#bodyStart >= this.#contentLength;
    if (complete) this.#buf = null;
    return complete;
  }
}

export class HttpSampler {
  readonly #endpoint: HttpEndpoint;
  readonly #request: Buffer;
  #socket: net.Socket | null = null;
  #stopped = false;

  constructor(endpoint: HttpEndpoint) {
    this.#endpoint = endpoint;
    this.#request = Buffer.from(`GET ${endpoint.path} HTTP/1.1\r\nHost: ${endpoint.hostHeader}\r\nUser-Agent: meshlet-bench-sampler\r\n\r\n`);
  }

  /**
   * Samples until stop() — one request every `intervalMs` at most (a pause between requests
   * keeps the probe from becoming load itself), into a fresh histogram.
   */
  async run(intervalMs: number, signal: { stopped: boolean }): Promise<SamplerResult> {
    const histogram = new LatencyHistogram();
    let errors = 0;
    let badStatus = 0;
    while (!signal.stopped && !this.#stopped) {
      const next = performance.now() + intervalMs;
      try {
        const { status, nanos } = await this.#once();
        if (status === 200) histogram.recordNanos(nanos);
        else badStatus++;
      } catch {
        errors++;
        this.#socket?.destroy();
        this.#socket = null;
      }
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    return { histogram, errors, badStatus };
  }

  close(): void {
    this.#stopped = true;
    this.#socket?.destroy();
    this.#socket = null;
  }

  async #connect(): Promise<net.Socket> {
    if (this.#socket && !this.#socket.destroyed) return this.#socket;
    const socket = net.connect({ host: this.#endpoint.host, port: this.#endpoint.port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => {});
    this.#socket = socket;
    return socket;
  }

  #once(): Promise<{ status: number; nanos: bigint }> {
    return this.#connect().then(
      (socket) =>
        new Promise((resolve, reject) => {
          const response = new ResponseReader();
          const cleanup = () => {
            socket.off('data', onData);
            socket.off('close', onClose);
          };
          const onClose = () => {
            cleanup();
            reject(new Error('connection closed mid-response'));
          };
          const onData = (chunk: Buffer) => {
            if (!response.push(chunk)) return;
            const status = response.status;
            const nanos = process.hrtime.bigint() - started;
            cleanup();
            resolve({ status, nanos });
          };
          socket.on('data', onData);
          socket.once('close', onClose);
          const started = process.hrtime.bigint();
          socket.write(this.#request);
        }),
    );
  }
}
