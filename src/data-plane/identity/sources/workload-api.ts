import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { MeshletError } from '../../../common/errors/meshlet-error.ts';
import { derToPem, parsePrivateKeyPem, PemError, splitConcatenatedDer, type PemErrorCode } from '../pem.ts';
import type { IdentitySnapshot, SvidSource } from '../svid.ts';
import { Backoff } from './backoff.ts';
import { SourceListeners } from './source-listeners.ts';
import { buildSnapshot, sameSnapshot, trustDomainOfKey } from './svid-material.ts';

/**
 * An SvidSource fed by a SPIFFE Workload API server (SPIRE agent, or any other
 * implementation) over FetchX509SVID, following SPIFFE_Workload_API.md and go-spiffe's
 * workloadapi client:
 * - every call carries the metadata `workload.spiffe.io: true` (servers answer
 *   InvalidArgument without it);
 * - the stream stays open; each message is a complete snapshot, the first at once, later
 *   ones on change; the default identity is svids[0];
 * - when the stream fails or ends it is reopened after a linear backoff (1 s, 2 s, … 30 s,
 *   reset by every message received), except after InvalidArgument or Unimplemented, which
 *   a retry cannot fix: those stop the source;
 * - a message that does not hold a usable SVID is an error event and never replaces the
 *   current snapshot.
 */
export class WorkloadApiError extends MeshletError {
  constructor(code: WorkloadApiErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

export type WorkloadApiErrorCode =
  /** No endpoint configured and SPIFFE_ENDPOINT_SOCKET unset. */
  | 'WORKLOAD_API_NO_ENDPOINT'
  /** The endpoint is not `unix:///abs/path` or `tcp://IP:port`. */
  | 'WORKLOAD_API_BAD_ENDPOINT'
  /** The stream failed with a status worth retrying (Unavailable, PermissionDenied, …) or ended; it will be reopened. */
  | 'WORKLOAD_API_STREAM_FAILED'
  /** The server refused the call for good (InvalidArgument, Unimplemented): the source stops. */
  | 'WORKLOAD_API_REJECTED'
  /** A message held no usable SVID (cause carries the precise reason); the current snapshot stays. */
  | 'WORKLOAD_API_BAD_RESPONSE'
  /** (as the cause of WORKLOAD_API_BAD_RESPONSE) the message's svids list is empty. */
  | 'WORKLOAD_API_NO_SVID'
  /** (as the cause of WORKLOAD_API_BAD_RESPONSE) no SVID has the configured SPIFFE ID / hint. */
  | 'WORKLOAD_API_NO_MATCHING_SVID'
  /** start() saw no valid snapshot within startTimeoutMs (cause: the last failure). */
  | 'WORKLOAD_API_START_TIMEOUT'
  /** start() after close(), or close() while start() was pending. */
  | 'WORKLOAD_API_CLOSED'
  /** An option has an impossible value (startTimeoutMs not a positive number). */
  | 'WORKLOAD_API_BAD_OPTION';

/** The metadata header the Workload API requires on every call (SPIFFE_Workload_Endpoint.md §5). */
export const WORKLOAD_API_HEADER = 'workload.spiffe.io';

export interface WorkloadApiSourceOptions {
  /** `unix:///abs/path` or `tcp://IP:port`; default: the SPIFFE_ENDPOINT_SOCKET variable. */
  endpoint?: string;
  /** Where SPIFFE_ENDPOINT_SOCKET is read from; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Use the SVID with this SPIFFE ID instead of svids[0]. */
  spiffeId?: string;
  /** Use the SVID with this operator hint instead of svids[0]. */
  hint?: string;
  /** How long start() waits for a first valid snapshot, retrying meanwhile. Default 30 s. */
  startTimeoutMs?: number;
  /** Reconnect delays: first, increment, cap. Default 1 s, +1 s, 30 s (go-spiffe's). */
  backoff?: { initialMs: number; stepMs: number; maxMs: number };
}

export const WORKLOAD_API_DEFAULTS = Object.freeze({
  startTimeoutMs: 30_000,
  backoff: Object.freeze({ initialMs: 1_000, stepMs: 1_000, maxMs: 30_000 }),
});

/**
 * Validates a Workload API endpoint address and returns the gRPC target for it. The rules are
 * SPIFFE_Workload_Endpoint.md §4 (and go-spiffe's parser): `unix:` with an absolute path and
 * nothing else; `tcp:` with an IP address (not a name) and a port, and nothing else.
 */
export function workloadApiTarget(endpoint: string): string {
  const bad = (why: string): never => {
    throw new WorkloadApiError('WORKLOAD_API_BAD_ENDPOINT', `invalid Workload API endpoint ${JSON.stringify(endpoint)}: ${why}; expected unix:///absolute/path or tcp://IP:port`);
  };
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return bad('not a URI');
  }
  if (url.username !== '' || url.password !== '') bad('userinfo is not allowed');
  if (url.search !== '') bad('a query is not allowed');
  if (url.hash !== '') bad('a fragment is not allowed');
  if (url.protocol === 'unix:') {
    if (url.host !== '') bad(`a unix socket URI has no authority, found ${JSON.stringify(url.host)} (use three slashes)`);
    if (!url.pathname.startsWith('/') || url.pathname === '/') bad('the unix socket path is missing');
    return `unix://${decodeURIComponent(url.pathname)}`;
  }
  if (url.protocol === 'tcp:') {
    if (url.pathname !== '' && url.pathname !== '/') bad('a tcp URI has no path');
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const family = isIP(host);
    if (family === 0) bad(`the tcp host must be an IP address, found ${JSON.stringify(url.hostname)}`);
    if (url.port === '') bad('the tcp port is missing');
    return family === 4 ? `ipv4:${host}:${url.port}` : `ipv6:[${host}]:${url.port}`;
  }
  return bad(`the scheme ${JSON.stringify(url.protocol.slice(0, -1))} is not unix or tcp`);
}

/** The raw protobuf shapes (proto-loader with keepCase; bytes as Buffer). */
interface X509SvidMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint: string;
}
interface X509SvidResponseMessage {
  svids: X509SvidMessage[];
  crl: Buffer[];
  federated_bundles: Record<string, Buffer>;
}

interface WorkloadApiClient extends grpc.Client {
  FetchX509SVID(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<X509SvidResponseMessage>;
}
type WorkloadApiClientConstructor = new (target: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => WorkloadApiClient;

/** The proto file meshlet ships, shared with the test server so both speak the same definition. */
export const WORKLOAD_API_PROTO_PATH = fileURLToPath(new URL('../proto/workload.proto', import.meta.url));

let serviceDefinition: grpc.GrpcObject | undefined;
/** The loaded proto (once per process): `SpiffeWorkloadAPI` and its messages. */
export function loadWorkloadApiProto(): grpc.GrpcObject {
  serviceDefinition ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(WORKLOAD_API_PROTO_PATH, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }),
  );
  return serviceDefinition;
}

/** Statuses that a retry cannot fix (SPIFFE_Workload_API.md; go-spiffe stops on InvalidArgument). */
const FATAL_STATUSES: ReadonlySet<grpc.status> = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.UNIMPLEMENTED]);

export class WorkloadApiSource implements SvidSource {
  readonly kind = 'workload-api';
  readonly #target: string;
  readonly #endpoint: string;
  readonly #spiffeId: string | undefined;
  readonly #hint: string | undefined;
  readonly #startTimeoutMs: number;
  readonly #backoff: Backoff;
  readonly #backoffOptions: { initialMs: number; stepMs: number; maxMs: number };
  readonly #listeners = new SourceListeners();
  #client: WorkloadApiClient | undefined;
  #call: grpc.ClientReadableStream<X509SvidResponseMessage> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #startTimer: NodeJS.Timeout | undefined;
  #current: IdentitySnapshot | undefined;
  #lastError: Error | undefined;
  #started: Promise<IdentitySnapshot> | undefined;
  #resolveStart: ((s: IdentitySnapshot) => void) | undefined;
  #rejectStart: ((err: Error) => void) | undefined;
  #stopped = false;

  /** Validates the configuration at once (throws WorkloadApiError); connects on start(). */
  constructor(options: WorkloadApiSourceOptions = {}) {
    const env = options.env ?? process.env;
    const endpoint = options.endpoint ?? env['SPIFFE_ENDPOINT_SOCKET'];
    if (endpoint === undefined || endpoint === '') {
      throw new WorkloadApiError('WORKLOAD_API_NO_ENDPOINT', 'no Workload API endpoint: set SPIFFE_ENDPOINT_SOCKET (for example unix:///run/spire/sockets/agent.sock)');
    }
    this.#endpoint = endpoint;
    this.#target = workloadApiTarget(endpoint);
    this.#spiffeId = options.spiffeId;
    this.#hint = options.hint;
    this.#startTimeoutMs = options.startTimeoutMs ?? WORKLOAD_API_DEFAULTS.startTimeoutMs;
    if (!Number.isFinite(this.#startTimeoutMs) || this.#startTimeoutMs <= 0) {
      throw new WorkloadApiError('WORKLOAD_API_BAD_OPTION', `startTimeoutMs must be a positive number of milliseconds, got ${this.#startTimeoutMs}`);
    }
    this.#backoffOptions = options.backoff ?? WORKLOAD_API_DEFAULTS.backoff;
    this.#backoff = new Backoff(this.#backoffOptions);
  }

  start(): Promise<IdentitySnapshot> {
    if (this.#started) return this.#started;
    if (this.#stopped) return Promise.reject(new WorkloadApiError('WORKLOAD_API_CLOSED', 'the Workload API source is closed'));
    this.#started = new Promise<IdentitySnapshot>((resolve, reject) => {
      this.#resolveStart = resolve;
      this.#rejectStart = reject;
    });
    this.#startTimer = setTimeout(() => {
      const last = this.#lastError;
      this.#failStart(
        new WorkloadApiError(
          'WORKLOAD_API_START_TIMEOUT',
          `no valid X509-SVID from the Workload API at ${this.#endpoint} within ${this.#startTimeoutMs} ms${last ? `: ${last.message}` : ''}`,
          { cause: last },
        ),
      );
    }, this.#startTimeoutMs);
    this.#open();
    return this.#started;
  }

  current(): IdentitySnapshot | undefined {
    return this.#current;
  }

  onUpdate(listener: (snapshot: IdentitySnapshot) => void): () => void {
    return this.#listeners.onUpdate(listener);
  }

  onError(listener: (err: Error) => void): () => void {
    return this.#listeners.onError(listener);
  }

  async close(): Promise<void> {
    if (this.#rejectStart) this.#failStart(new WorkloadApiError('WORKLOAD_API_CLOSED', 'the Workload API source was closed before a first SVID arrived'));
    this.#stop();
    this.#listeners.clear();
  }

  #open(): void {
    if (this.#stopped) return;
    // A fresh channel per attempt, with its own subchannel pool and reconnect backoff matched
    // to ours: otherwise grpc-js's channel backoff (up to 120 s) would sit underneath ours and
    // fail every retry fast with UNAVAILABLE long after the agent is back.
    this.#client?.close();
    const Client = (loadWorkloadApiProto()['SpiffeWorkloadAPI'] as unknown) as WorkloadApiClientConstructor;
    this.#client = new Client(this.#target, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': this.#backoffOptions.initialMs,
      'grpc.max_reconnect_backoff_ms': this.#backoffOptions.maxMs,
    });
    const metadata = new grpc.Metadata();
    metadata.set(WORKLOAD_API_HEADER, 'true');
    const call = this.#client.FetchX509SVID({}, metadata);
    this.#call = call;
    call.on('data', (message: X509SvidResponseMessage) => {
      if (call !== this.#call) return;
      this.#backoff.reset();
      this.#onMessage(message);
    });
    // grpc-js emits 'error' for every non-OK status and then 'status' for every status; the
    // decision is taken once, on 'status'. The 'error' listener only keeps it from throwing.
    call.on('error', () => {});
    call.on('status', (status: grpc.StatusObject) => {
      if (call !== this.#call || this.#stopped) return;
      this.#call = undefined;
      this.#onStreamEnd(status);
    });
  }

  #onStreamEnd(status: grpc.StatusObject): void {
    const name = grpc.status[status.code] ?? String(status.code);
    if (FATAL_STATUSES.has(status.code)) {
      const err = new WorkloadApiError('WORKLOAD_API_REJECTED', `the Workload API at ${this.#endpoint} refused FetchX509SVID with ${name}: ${status.details}; not retrying`);
      this.#report(err);
      this.#failStart(err);
      this.#stop();
      return;
    }
    const delay = this.#backoff.next();
    const what = status.code === grpc.status.OK ? 'ended the FetchX509SVID stream' : `failed FetchX509SVID with ${name}: ${status.details}`;
    this.#report(new WorkloadApiError('WORKLOAD_API_STREAM_FAILED', `the Workload API at ${this.#endpoint} ${what}; reconnecting in ${delay} ms`, { cause: status }));
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#open();
    }, delay);
  }

  #onMessage(message: X509SvidResponseMessage): void {
    let snapshot: IdentitySnapshot;
    try {
      snapshot = this.#toSnapshot(message);
    } catch (err) {
      this.#report(new WorkloadApiError('WORKLOAD_API_BAD_RESPONSE', `unusable FetchX509SVID response from ${this.#endpoint}: ${(err as Error).message}`, { cause: err }));
      return;
    }
    if (sameSnapshot(this.#current, snapshot)) return;
    const first = this.#current === undefined;
    this.#current = snapshot;
    if (first && this.#resolveStart) {
      clearTimeout(this.#startTimer);
      const resolve = this.#resolveStart;
      this.#resolveStart = this.#rejectStart = undefined;
      resolve(snapshot);
    } else {
      this.#listeners.emitUpdate(snapshot);
    }
  }

  #toSnapshot(message: X509SvidResponseMessage): IdentitySnapshot {
    const svids = message.svids ?? [];
    if (svids.length === 0) throw new WorkloadApiError('WORKLOAD_API_NO_SVID', 'the response holds no SVID');
    const chosen = this.#choose(svids);
    const federated = new Map<string, string>();
    for (const [name, der] of Object.entries(message.federated_bundles ?? {})) {
      const what = `federated_bundles[${JSON.stringify(name)}]`;
      federated.set(trustDomainOfKey(name, what), derChainToPem(der, what));
    }
    return buildSnapshot({
      chainPem: derChainToPem(chosen.x509_svid, 'x509_svid'),
      key: parsePrivateKeyPem(derToPem(chosen.x509_svid_key, 'PRIVATE KEY'), 'x509_svid_key'),
      bundlePem: derChainToPem(chosen.bundle, 'bundle'),
      federated,
      what: 'x509_svid',
      expectedSpiffeId: chosen.spiffe_id,
    });
  }

  #choose(svids: readonly X509SvidMessage[]): X509SvidMessage {
    if (this.#spiffeId === undefined && this.#hint === undefined) return svids[0]!;
    const match = svids.find((s) => (this.#spiffeId === undefined || s.spiffe_id === this.#spiffeId) && (this.#hint === undefined || s.hint === this.#hint));
    if (!match) {
      const wanted = [this.#spiffeId && `SPIFFE ID ${this.#spiffeId}`, this.#hint && `hint ${JSON.stringify(this.#hint)}`].filter(Boolean).join(' and ');
      throw new WorkloadApiError('WORKLOAD_API_NO_MATCHING_SVID', `none of the ${svids.length} SVIDs has ${wanted} (offered: ${svids.map((s) => s.spiffe_id + (s.hint ? ` [${s.hint}]` : '')).join(', ')})`);
    }
    return match;
  }

  #report(err: Error): void {
    this.#lastError = err;
    this.#listeners.emitError(err);
  }

  #failStart(err: Error): void {
    const reject = this.#rejectStart;
    if (!reject) return;
    this.#resolveStart = this.#rejectStart = undefined;
    // A source that never got going is useless: release the stream and timers at once, so a
    // caller that forgets close() after a failed start() leaks nothing.
    this.#stop();
    reject(err);
  }

  #stop(): void {
    this.#stopped = true;
    clearTimeout(this.#startTimer);
    clearTimeout(this.#retryTimer);
    const call = this.#call;
    this.#call = undefined;
    call?.cancel();
    this.#client?.close();
    this.#client = undefined;
  }
}

/** Concatenated DER certificates -> PEM (the Workload API's x509_svid / bundle encoding). */
function derChainToPem(der: Uint8Array, what: string): string {
  if (der.length === 0) throw new PemError('PEM_NO_CERTIFICATE', `${what} is empty`);
  let pem = '';
  try {
    for (const cert of splitConcatenatedDer(der)) pem += derToPem(cert);
  } catch (err) {
    // Same code, but say which field was broken.
    if (err instanceof PemError) throw new PemError(err.code as PemErrorCode, `${what}: ${err.message}`, { cause: err });
    throw err;
  }
  return pem;
}
