import * as grpc from '@grpc/grpc-js';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { MeshletError } from '../../common/errors/meshlet-error.ts';
import { parseWorkloadSpiffeId } from '../../common/identity/spiffe-id.ts';
import { discoveryServiceDefinition, type DiscoveryKindName, type ResolveRequestMessage, type ResolveResponseMessage } from '../../data-plane/identity/proto/meshlet-discovery.ts';
import type { TrustBundles } from '../../data-plane/identity/svid.ts';
import { verifyX509Svid } from '../../data-plane/identity/svid-verify.ts';
import { captureChainBeforeNode, peerChainOf } from '../../data-plane/tls/peer-chain.ts';
import type { TokenBucketLimiter } from '../identity-service/rate-limit.ts';
import type { MeshView, Resolution, ResolutionKind } from './mesh-view.ts';

/**
 * `meshlet.discovery.v1.Discovery/Resolve` on the identity service's TLS listener (the one
 * Certify uses). The caller is a sidecar and proves it with its X.509-SVID as the TLS client
 * certificate: the listener asks for one but lets a handshake without it through (Certify's
 * callers have no SVID yet), and this service verifies the presented chain against the trust
 * domain's roots on every call, exactly as a peer sidecar would (verifyX509Svid). No valid
 * SVID → UNAUTHENTICATED. The caller's namespace, for short Service names, is its SVID's.
 *
 * Bounded: a token bucket per caller (SPIFFE ID and address, so one pod cannot spend its
 * siblings' budget), `host` at most 255 bytes, requests at most the listener's 32 KiB, answers
 * at most 256 endpoints and 64 identities (mesh-view.ts).
 */
export const DISCOVERY_REFUSALS = {
  DISCOVERY_NO_CLIENT_CERTIFICATE: { status: grpc.status.UNAUTHENTICATED, reason: 'unauthenticated' },
  DISCOVERY_CLIENT_CERTIFICATE_INVALID: { status: grpc.status.UNAUTHENTICATED, reason: 'unauthenticated' },
  DISCOVERY_CALLER_NOT_WORKLOAD: { status: grpc.status.PERMISSION_DENIED, reason: 'not_workload' },
  DISCOVERY_RATE_LIMITED: { status: grpc.status.RESOURCE_EXHAUSTED, reason: 'rate_limited' },
  DISCOVERY_REQUEST_MALFORMED: { status: grpc.status.INVALID_ARGUMENT, reason: 'malformed_request' },
  DISCOVERY_NOT_SYNCED: { status: grpc.status.UNAVAILABLE, reason: 'not_synced' },
  DISCOVERY_STALE: { status: grpc.status.UNAVAILABLE, reason: 'stale' },
  DISCOVERY_INTERNAL: { status: grpc.status.INTERNAL, reason: 'internal' },
} as const;

export type DiscoveryErrorCode = keyof typeof DISCOVERY_REFUSALS;
export type DiscoveryRefusalReason = (typeof DISCOVERY_REFUSALS)[DiscoveryErrorCode]['reason'];
export const DISCOVERY_REFUSAL_REASONS: readonly DiscoveryRefusalReason[] = [...new Set(Object.values(DISCOVERY_REFUSALS).map((r) => r.reason))];

export class DiscoveryError extends MeshletError {
  declare readonly code: DiscoveryErrorCode;
  readonly grpcStatus: grpc.status;
  readonly reason: DiscoveryRefusalReason;

  constructor(code: DiscoveryErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.grpcStatus = DISCOVERY_REFUSALS[code].status;
    this.reason = DISCOVERY_REFUSALS[code].reason;
  }
}

export interface DiscoveryMetrics {
  onResolved(kind: ResolutionKind): void;
  onRefused(reason: DiscoveryRefusalReason): void;
}

export const noDiscoveryMetrics: DiscoveryMetrics = Object.freeze({ onResolved() {}, onRefused() {} });

export const MAX_HOST_BYTES = 255;

/**
 * The client chain of each live connection of the listener, by the peer string grpc-js gives a
 * call (`address:port`). The chain is read before Node's own handler hides the intermediates
 * (nodejs/node#65579; the 'keylog' hook MeshTls uses too).
 */
export class CallerConnections {
  readonly #byPeer = new Map<string, TLSSocket>();

  attach(server: TlsServer): void {
    const hooked = new WeakSet<TLSSocket>();
    server.on('keylog', (_line: Buffer, socket: TLSSocket) => {
      if (hooked.has(socket)) return;
      hooked.add(socket);
      captureChainBeforeNode(socket);
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      this.#byPeer.set(key, socket);
      socket.once('close', () => {
        if (this.#byPeer.get(key) === socket) this.#byPeer.delete(key);
      });
    });
  }

  /** The chain the caller presented (leaf first), or undefined when it presented none. */
  chainOf(peer: string): Buffer[] | undefined {
    const socket = this.#byPeer.get(peer);
    return socket === undefined ? undefined : peerChainOf(socket);
  }

  get size(): number {
    return this.#byPeer.size;
  }
}

export interface DiscoveryServiceOptions {
  view: MeshView;
  /** The roots callers' SVIDs must chain to (the CA's bundle, by trust domain). */
  bundles: () => TrustBundles;
  /** Whether the view may be used now (ClusterWatch.fresh). */
  freshness: () => { ok: true } | { ok: false; reason: 'not_synced' | 'stale'; detail: string };
  rateLimiter?: TokenBucketLimiter;
  metrics?: DiscoveryMetrics;
  logger?: Logger;
}

const KIND_NAMES: Record<ResolutionKind, DiscoveryKindName> = { meshed: 'MESHED', unmeshed: 'UNMESHED', mixed: 'MIXED', external: 'EXTERNAL', unknown: 'UNKNOWN' };

interface MalformedRequest {
  malformed: string;
}

export class DiscoveryService {
  readonly callers = new CallerConnections();
  readonly #opts: DiscoveryServiceOptions;
  readonly #metrics: DiscoveryMetrics;

  constructor(options: DiscoveryServiceOptions) {
    this.#opts = options;
    this.#metrics = options.metrics ?? noDiscoveryMetrics;
  }

  /** The service definition and handler, for grpc.Server.addService. */
  grpcService(): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation } {
    const resolve = discoveryServiceDefinition()['Resolve']!;
    const definition: grpc.ServiceDefinition = {
      Resolve: {
        ...resolve,
        // Undecodable bytes are the caller's fault: INVALID_ARGUMENT, not grpc-js's INTERNAL.
        requestDeserialize: (bytes: Buffer): ResolveRequestMessage | MalformedRequest => {
          try {
            return resolve.requestDeserialize(bytes) as ResolveRequestMessage;
          } catch (err) {
            return { malformed: (err as Error).message };
          }
        },
      },
    };
    const implementation: grpc.UntypedServiceImplementation = {
      Resolve: (call: grpc.ServerUnaryCall<ResolveRequestMessage | MalformedRequest, ResolveResponseMessage>, callback: grpc.sendUnaryData<ResolveResponseMessage>) => {
        try {
          callback(null, this.resolve(call.request, call.getPeer()));
        } catch (err) {
          // resolve() throws DiscoveryError only (anything else is wrapped, counted and logged there).
          const e = err as DiscoveryError;
          const metadata = new grpc.Metadata();
          metadata.set('meshlet-error-code', e.code);
          callback({ code: e.grpcStatus, details: e.message, metadata });
        }
      },
    };
    return { definition, implementation };
  }

  /** One Resolve call from the connection `peer` (grpc-js's `address:port`). Throws DiscoveryError. */
  resolve(request: ResolveRequestMessage | MalformedRequest, peer: string): ResolveResponseMessage {
    let caller: string | undefined;
    try {
      const { id, namespace } = this.#authenticate(peer);
      caller = id;
      if (this.#opts.rateLimiter) {
        const decision = this.#opts.rateLimiter.take(`${id} ${peerAddress(peer)}`);
        if (!decision.allowed) throw new DiscoveryError('DISCOVERY_RATE_LIMITED', `too many Resolve calls from ${id} at ${peerAddress(peer)}; retry in ${Math.ceil(decision.retryAfterMs)} ms`);
      }
      const { host, port } = checkRequest(request);
      const fresh = this.#opts.freshness();
      if (!fresh.ok) throw new DiscoveryError(fresh.reason === 'stale' ? 'DISCOVERY_STALE' : 'DISCOVERY_NOT_SYNCED', `discovery is unavailable: ${fresh.detail}; apply the fail-closed rule`);
      const r = this.#opts.view.resolve({ host, port }, namespace);
      this.#metrics.onResolved(r.kind);
      this.#opts.logger?.debug({ event: 'resolved', caller: id, host, port, kind: r.kind, service: r.service, reason: r.reason }, 'resolved a destination');
      return toMessage(r);
    } catch (thrown) {
      const err = thrown instanceof DiscoveryError ? thrown : new DiscoveryError('DISCOVERY_INTERNAL', `internal error: ${(thrown as Error)?.message ?? String(thrown)}`, { cause: thrown });
      this.#metrics.onRefused(err.reason);
      const log = { event: 'resolve_refused', code: err.code, reason: err.reason, caller, peer };
      if (err.reason === 'not_synced' || err.reason === 'stale' || err.reason === 'internal') this.#opts.logger?.error(log, err.message);
      else this.#opts.logger?.warn(log, err.message);
      throw err;
    }
  }

  #authenticate(peer: string): { id: string; namespace: string } {
    const chain = this.callers.chainOf(peer);
    if (chain === undefined || chain.length === 0) {
      throw new DiscoveryError('DISCOVERY_NO_CLIENT_CERTIFICATE', 'Resolve needs the caller\'s X.509-SVID as the TLS client certificate');
    }
    let verified;
    try {
      verified = verifyX509Svid(chain, this.#opts.bundles());
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'unknown';
      throw new DiscoveryError('DISCOVERY_CLIENT_CERTIFICATE_INVALID', `the client certificate is not a valid X.509-SVID of this trust domain (${code}: ${(err as Error).message})`, { cause: err });
    }
    try {
      return { id: verified.spiffeId.id, namespace: parseWorkloadSpiffeId(verified.spiffeId).namespace };
    } catch (err) {
      throw new DiscoveryError('DISCOVERY_CALLER_NOT_WORKLOAD', `${verified.spiffeId.id} is not a workload identity (spiffe://<td>/ns/<ns>/sa/<sa>)`, { cause: err });
    }
  }
}

function checkRequest(request: ResolveRequestMessage | MalformedRequest): { host: string; port: number } {
  if ('malformed' in request) throw new DiscoveryError('DISCOVERY_REQUEST_MALFORMED', `the request is not a ResolveRequest (${request.malformed})`);
  const { host, port } = request;
  if (typeof host !== 'string' || host.trim() === '') throw new DiscoveryError('DISCOVERY_REQUEST_MALFORMED', 'the request has no host');
  if (Buffer.byteLength(host) > MAX_HOST_BYTES) throw new DiscoveryError('DISCOVERY_REQUEST_MALFORMED', `host is longer than ${MAX_HOST_BYTES} bytes`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DiscoveryError('DISCOVERY_REQUEST_MALFORMED', `port ${port} is not 1-65535`);
  return { host, port };
}

function toMessage(r: Resolution): ResolveResponseMessage {
  return {
    kind: KIND_NAMES[r.kind],
    identities: r.identities,
    protocol: r.protocol,
    endpoints: r.endpoints,
    endpoints_truncated: r.endpointsTruncated,
    service: r.service,
    external_name: r.externalName,
    reason: r.reason,
  };
}

/** The address part of grpc-js's `address:port` peer string (IPv6 addresses contain colons). */
function peerAddress(peer: string): string {
  const colon = peer.lastIndexOf(':');
  return colon > 0 ? peer.slice(0, colon) : peer;
}
