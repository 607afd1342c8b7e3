import { createPrivateKey } from 'node:crypto';
import { rm } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { pemCertificatesToDer } from '../../src/data-plane/identity/pem.ts';
import { loadWorkloadApiProto, WORKLOAD_API_HEADER } from '../../src/data-plane/identity/sources/workload-api.ts';
import type { X509Svid } from '../../src/data-plane/identity/svid.ts';

/**
 * A SPIFFE Workload API server for tests, served from the same proto file meshlet ships, over
 * a real Unix socket. It behaves like a SPIRE agent where it matters to a client:
 * - a call without the metadata `workload.spiffe.io: true` gets InvalidArgument
 *   ("security header missing from request", SPIRE's words);
 * - FetchX509SVID with no identity to give gets PermissionDenied ("no identity issued");
 * - otherwise the current response is sent at once and every later one is pushed to every
 *   open stream (each message a complete snapshot);
 * - the methods it does not implement answer Unimplemented (grpc-js does that).
 */
export interface X509SvidMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint?: string;
}

export interface X509SvidResponse {
  svids: X509SvidMessage[];
  crl?: Buffer[];
  federated_bundles?: Record<string, Buffer>;
}

/** Concatenated DER of every certificate in a PEM text (the Workload API encoding). */
export function pemToConcatenatedDer(pem: string): Buffer {
  return Buffer.concat(pemCertificatesToDer(pem));
}

/** The Workload API message for an SVID as the CA issued it. */
export function svidMessage(svid: X509Svid & { bundlePem: string }, options: { hint?: string } = {}): X509SvidMessage {
  return {
    spiffe_id: svid.spiffeId.id,
    x509_svid: pemToConcatenatedDer(svid.certChainPem),
    x509_svid_key: createPrivateKey(svid.privateKeyPem).export({ format: 'der', type: 'pkcs8' }),
    bundle: pemToConcatenatedDer(svid.bundlePem),
    ...(options.hint !== undefined ? { hint: options.hint } : {}),
  };
}

type FetchCall = grpc.ServerWritableStream<object, X509SvidResponse>;

export class WorkloadApiServer {
  /** The Unix socket path, or undefined for a TCP server. */
  readonly socketPath: string | undefined;
  /** The address a client is configured with (unix:///path, or tcp://127.0.0.1:port once listening). */
  endpoint: string;
  /** FetchX509SVID calls received, with and without the security header. */
  fetchCalls = 0;
  /** Values of the security header, one entry per call ([] when absent). */
  readonly headersSeen: string[][] = [];
  #server: grpc.Server | undefined;
  #response: X509SvidResponse | undefined;
  readonly #open = new Set<FetchCall>();
  #failures: { code: grpc.status; details: string }[] = [];

  private constructor(socketPath: string | undefined) {
    this.socketPath = socketPath;
    this.endpoint = socketPath === undefined ? 'tcp://127.0.0.1:0' : `unix://${socketPath}`;
  }

  /** Serves on `socketPath` (an absolute path; a stale socket file there is removed). */
  static async start(socketPath: string, response?: X509SvidResponse): Promise<WorkloadApiServer> {
    const server = new WorkloadApiServer(socketPath);
    server.#response = response;
    await server.listen();
    return server;
  }

  /** Serves on 127.0.0.1 with a port the OS picks (`endpoint` is tcp://127.0.0.1:<port>). */
  static async startTcp(response?: X509SvidResponse): Promise<WorkloadApiServer> {
    const server = new WorkloadApiServer(undefined);
    server.#response = response;
    await server.listen();
    return server;
  }

  /** Binds (again, after stop()) on the same address. */
  async listen(): Promise<void> {
    if (this.#server) throw new Error('already listening');
    if (this.socketPath !== undefined) await rm(this.socketPath, { force: true });
    const server = new grpc.Server();
    const service = (loadWorkloadApiProto()['SpiffeWorkloadAPI'] as grpc.ServiceClientConstructor).service;
    server.addService(service, { FetchX509SVID: (call: FetchCall) => this.#fetch(call) });
    const bindTarget = this.socketPath !== undefined ? this.endpoint : this.endpoint.replace('tcp://', '');
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(bindTarget, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    if (this.socketPath === undefined) this.endpoint = `tcp://127.0.0.1:${port}`;
    this.#server = server;
  }

  /** Drops every connection and stream at once, as a crashing agent would. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#open.clear();
    server?.forceShutdown();
    if (this.socketPath !== undefined) await rm(this.socketPath, { force: true });
  }

  /** Sets the current response and pushes it to every open FetchX509SVID stream. */
  setResponse(response: X509SvidResponse): void {
    this.#response = response;
    for (const call of this.#open) call.write(response);
  }

  /** The next `count` FetchX509SVID calls fail with `code` (after the header check). */
  failNext(code: grpc.status, count = 1, details = `test failure ${grpc.status[code]}`): void {
    for (let i = 0; i < count; i++) this.#failures.push({ code, details });
  }

  /** Number of FetchX509SVID streams open right now. */
  get openStreams(): number {
    return this.#open.size;
  }

  #fetch(call: FetchCall): void {
    this.fetchCalls++;
    const header = call.metadata.get(WORKLOAD_API_HEADER).map(String);
    this.headersSeen.push(header);
    if (header.length !== 1 || header[0] !== 'true') {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' });
      return;
    }
    const failure = this.#failures.shift();
    if (failure) {
      call.emit('error', failure);
      return;
    }
    if (!this.#response) {
      call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: 'no identity issued' });
      return;
    }
    this.#open.add(call);
    call.on('cancelled', () => this.#open.delete(call));
    call.on('close', () => this.#open.delete(call));
    call.write(this.#response);
  }
}
