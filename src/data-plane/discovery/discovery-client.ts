import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { checkServerIdentity, createSecureContext, type PeerCertificate, type SecureContext } from 'node:tls';
import { isSpiffeId } from '../../common/identity/spiffe-id.ts';
import { discoveryServiceDefinition, RESOLVE_METHOD_PATH, type ResolveRequestMessage, type ResolveResponseMessage } from '../identity/proto/meshlet-discovery.ts';
import { checkServerSpiffeId } from '../identity/sources/svid-material.ts';
import type { IdentitySnapshot } from '../identity/svid.ts';
import { DESTINATION_PROTOCOLS, type Destination, type DestinationProtocol, type DestinationResolver, type ResolvedEndpoint, type Resolution, type ResolveFailure, type UnavailableResolution } from './resolution.ts';

/**
 * The sidecar's client of `meshlet.discovery.v1.Discovery/Resolve` on the identity service
 * (the address the meshlet-ca identity source uses; docs/discovery.md). Loaded only when
 * discovery is on (create-discovery.ts imports it on demand): grpc-js is several MB of heap.
 *
 * TLS as the meshlet-ca source does it — TLS 1.3, the server verified against the mesh roots
 * and recognised by its SPIFFE ID (spiffe://<td>/ns/meshlet-system/sa/meshlet-identity), SNI
 * `meshlet-identity` — and, in addition, the sidecar's current X.509-SVID presented as the
 * client certificate: the service authenticates every Resolve with it.
 *
 * Rotation: the SVID is read from the identity source on every call; when it is not the one
 * the channel was built with, a new channel (so a new connection) is made with it and the old
 * one is closed once its calls finish. A long-lived connection therefore never outlives the
 * SVID it presented (the service checks expiry on every call). The roots are the snapshot's
 * bundle for the trust domain (they rotate with it); before the first SVID, `rootsPem`.
 * Without an SVID the call is made without a client certificate and the service answers
 * UNAUTHENTICATED — reported as unavailable like any failure.
 *
 * `resolve()` never rejects: failures are `{ kind: 'unavailable', reason, detail }`.
 */
export interface DiscoveryClientOptions {
  /** host:port of the identity service (MESHLET_CA_ADDRESS). */
  address: string;
  trustDomain: string;
  /** Where the current SVID comes from (the sidecar's identity source). */
  identity: { current(): IdentitySnapshot | undefined };
  /** Roots for the identity service when the identity source has no snapshot (the trust bundle file). */
  rootsPem?: string;
  /** How the identity service is recognised. Default its SPIFFE ID, as the meshlet-ca source. */
  server?: { spiffeId: string } | { dnsName: string };
  /** Deadline of one Resolve. Default 1 s: a connection of the app waits for it. */
  callTimeoutMs?: number;
}

/** The service's refusal reasons (control-plane discovery-service.ts DISCOVERY_REFUSALS), by trailer code. */
const SERVICE_REASONS: Record<string, string> = {
  DISCOVERY_NO_CLIENT_CERTIFICATE: 'unauthenticated',
  DISCOVERY_CLIENT_CERTIFICATE_INVALID: 'unauthenticated',
  DISCOVERY_CALLER_NOT_WORKLOAD: 'not_workload',
  DISCOVERY_RATE_LIMITED: 'rate_limited',
  DISCOVERY_REQUEST_MALFORMED: 'malformed_request',
  DISCOVERY_NOT_SYNCED: 'not_synced',
  DISCOVERY_STALE: 'stale',
  DISCOVERY_INTERNAL: 'internal',
};

/** A Resolve request's `host` is at most this many bytes (the service refuses more). */
export const MAX_HOST_BYTES = 255;

interface Channel {
  client: grpc.Client;
  snapshot: IdentitySnapshot | undefined;
}

export class DiscoveryClient implements DestinationResolver {
  readonly #opts: Required<Omit<DiscoveryClientOptions, 'rootsPem'>> & { rootsPem: string | undefined };
  readonly #checkServer: (hostname: string, cert: PeerCertificate) => Error | undefined;
  readonly #sni: string;
  #channel: Channel | undefined;
  #closed = false;

  constructor(options: DiscoveryClientOptions) {
    const server = options.server ?? { spiffeId: `spiffe://${options.trustDomain}/ns/meshlet-system/sa/meshlet-identity` };
    this.#opts = { address: options.address, trustDomain: options.trustDomain, identity: options.identity, rootsPem: options.rootsPem, server, callTimeoutMs: options.callTimeoutMs ?? 1_000 };
    this.#checkServer = (_hostname, cert) => ('dnsName' in server ? checkServerIdentity(server.dnsName, cert) : checkServerSpiffeId(server.spiffeId, cert));
    // An IP is not allowed as SNI (RFC 6066) and the SPIFFE check ignores hostnames: a fixed name.
    this.#sni = 'dnsName' in server ? server.dnsName : 'meshlet-identity';
  }

  resolve(destination: Destination): Promise<Exclude<Resolution, UnavailableResolution> | ResolveFailure> {
    if (this.#closed) return Promise.resolve(failure('closed', 'the discovery client is closed'));
    const host = destination.host;
    if (host === '' || Buffer.byteLength(host) > MAX_HOST_BYTES || !(Number.isInteger(destination.port) && destination.port >= 1 && destination.port <= 65535)) {
      return Promise.resolve(failure('invalid_host', `cannot ask about ${JSON.stringify(host.slice(0, 64))}:${destination.port}: the host must be 1-${MAX_HOST_BYTES} bytes and the port 1-65535`));
    }
    let client: grpc.Client;
    try {
      client = this.#client();
    } catch (err) {
      return Promise.resolve(failure((err as ClientSetupError).reason ?? 'internal', (err as Error).message));
    }
    const method = discoveryServiceDefinition()['Resolve']!;
    return new Promise((resolve) => {
      client.makeUnaryRequest<ResolveRequestMessage, ResolveResponseMessage>(
        RESOLVE_METHOD_PATH,
        method.requestSerialize,
        method.responseDeserialize,
        { host, port: destination.port },
        new grpc.Metadata(),
        { deadline: Date.now() + this.#opts.callTimeoutMs },
        (err: grpc.ServiceError | null, res?: ResolveResponseMessage) => {
          if (err) return resolve(fromError(err, this.#opts.address));
          try {
            resolve(toResolution(res!));
          } catch (e) {
            resolve(failure('bad_answer', `Resolve(${host}:${destination.port}) answered something unusable: ${(e as Error).message}`));
          }
        },
      );
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#channel?.client.close();
    this.#channel = undefined;
  }

  /** The channel for the current SVID: made anew when the SVID changed since the last call. */
  #client(): grpc.Client {
    const snapshot = this.#opts.identity.current();
    const channel = this.#channel;
    if (channel !== undefined && channel.snapshot === snapshot) return channel.client;
    const roots = snapshot?.bundles.get(this.#opts.trustDomain) ?? this.#opts.rootsPem;
    if (roots === undefined || roots === '') throw new ClientSetupError('no_svid_roots', `no roots to verify the identity service with: no SVID yet and no trust bundle for ${this.#opts.trustDomain}`);
    let context: SecureContext;
    try {
      context = createSecureContext({ ca: roots, minVersion: 'TLSv1.3', ...(snapshot ? { cert: snapshot.svid.certChainPem, key: snapshot.svid.privateKeyPem } : {}) });
    } catch (err) {
      throw new ClientSetupError('internal', `cannot build the TLS context for discovery: ${(err as Error).message}`);
    }
    const credentials = grpc.credentials.createFromSecureContext(context, { checkServerIdentity: this.#checkServer });
    const client = new grpc.Client(this.#opts.address, credentials, {
      'grpc.ssl_target_name_override': this.#sni,
      // grpc-js's own reconnect backoff grows to 120 s, and calls fail fast meanwhile: after an
      // outage of the identity service, discovery would lag it by minutes.
      'grpc.initial_reconnect_backoff_ms': 500,
      'grpc.max_reconnect_backoff_ms': 5_000,
    });
    // The previous channel's calls finish; new calls go to the new one.
    channel?.client.close();
    this.#channel = { client, snapshot };
    return client;
  }
}

class ClientSetupError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

function failure(reason: string, detail: string): ResolveFailure {
  return { kind: 'unavailable', reason, detail };
}

function fromError(err: grpc.ServiceError, address: string): ResolveFailure {
  const code = err.metadata?.get('meshlet-error-code')[0];
  const status = grpc.status[err.code] ?? String(err.code);
  const fromService = typeof code === 'string' ? SERVICE_REASONS[code] : undefined;
  let reason: string;
  if (fromService !== undefined) reason = fromService;
  else if (err.code === grpc.status.UNAVAILABLE) reason = 'unreachable';
  else if (err.code === grpc.status.DEADLINE_EXCEEDED) reason = 'deadline';
  else if (err.code === grpc.status.UNAUTHENTICATED) reason = 'unauthenticated';
  else reason = `grpc_${String(status).toLowerCase()}`;
  return failure(reason, `Resolve at ${address} failed: ${status}${typeof code === 'string' ? ` (${code})` : ''}: ${err.details}`);
}

/** The service's answer in the sidecar's shape, checked: anything unexpected throws. */
export function toResolution(res: ResolveResponseMessage): Exclude<Resolution, UnavailableResolution> {
  const reason = typeof res.reason === 'string' ? res.reason : '';
  switch (res.kind) {
    case 'MESHED':
    case 'MIXED': {
      const identities = checkIdentities(res.identities);
      if (identities.length === 0) throw new Error(`a ${res.kind} answer without identities`);
      const endpoints = checkEndpoints(res.endpoints);
      if (res.kind === 'MIXED') {
        if (endpoints.length === 0) throw new Error('a MIXED answer without endpoints');
        for (const e of endpoints) if (e.identity !== undefined && !identities.includes(e.identity)) throw new Error(`endpoint ${e.address}:${e.port} has ${e.identity}, which is not among the identities`);
      }
      return { kind: res.kind === 'MESHED' ? 'meshed' : 'mixed', identities, protocol: protocolOf(res.protocol), endpoints, endpointsTruncated: res.endpoints_truncated === true, service: res.service ?? '', reason };
    }
    case 'UNMESHED': {
      const endpoints = checkEndpoints(res.endpoints);
      if (endpoints.some((e) => e.identity !== undefined)) throw new Error('an UNMESHED answer with a meshed endpoint');
      return { kind: 'unmeshed', protocol: protocolOf(res.protocol), endpoints, endpointsTruncated: res.endpoints_truncated === true, service: res.service ?? '', reason };
    }
    case 'EXTERNAL':
      return { kind: 'external', externalName: res.external_name ?? '', reason };
    case 'UNKNOWN':
      return { kind: 'unknown', reason };
    default:
      throw new Error(`kind ${JSON.stringify(res.kind)}`);
  }
}

function checkIdentities(ids: unknown): string[] {
  if (!Array.isArray(ids)) throw new Error('identities is not a list');
  for (const id of ids) if (typeof id !== 'string' || !isSpiffeId(id)) throw new Error(`identity ${JSON.stringify(id)} is not a SPIFFE ID`);
  return ids as string[];
}

function checkEndpoints(list: unknown): ResolvedEndpoint[] {
  if (!Array.isArray(list)) throw new Error('endpoints is not a list');
  return (list as ResolveResponseMessage['endpoints']).map((e) => {
    if (typeof e.address !== 'string' || e.address === '' || !(Number.isInteger(e.port) && e.port >= 1 && e.port <= 65535)) throw new Error(`endpoint ${JSON.stringify(e)}`);
    if (e.identity !== '' && !isSpiffeId(e.identity)) throw new Error(`endpoint identity ${JSON.stringify(e.identity)} is not a SPIFFE ID`);
    return { address: e.address, port: e.port, identity: e.identity === '' ? undefined : e.identity, ready: e.ready === true };
  });
}

function protocolOf(raw: string): DestinationProtocol {
  return (DESTINATION_PROTOCOLS as readonly string[]).includes(raw) ? (raw as DestinationProtocol) : 'detect';
}

