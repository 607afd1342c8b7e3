import * as grpc from '@grpc/grpc-js';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { ConnectionGuard, type ListenerObserver } from '../../common/net/connection-guard.ts';
import { listenOn } from '../../common/net/listen.ts';
import { Certifier, type CertifierOptions } from './certify.ts';
import { CertifyError } from './errors.ts';
import { identityServiceDefinition, type CertifyRequestMessage, type CertifyResponseMessage, type RevocationsRequestMessage, type RevocationsResponseMessage } from '../../data-plane/identity/proto/meshlet-identity.ts';
import { RevocationPublisher } from './revocations.ts';
import type { RevocationSet } from '../../data-plane/identity/revocation/revocation-list.ts';
import type { RotatingServerCredentials } from './serving-identity.ts';
import type { DiscoveryService } from '../discovery/discovery-service.ts';

/**
 * The gRPC face of the identity service: `meshlet.identity.v1.Identity/Certify` over TLS.
 * All decisions live in Certifier; this file only moves bytes and maps CertifyError to a
 * gRPC status (the one place that does).
 *
 * The listener is meshlet's, not grpc-js's: grpc-js cannot cap connections nor close a
 * handshake that never ends (its http2 server keeps node's 120 s default). A net.Server capped
 * by the connection guard accepts; a tls.Server with the credentials' certificate (followed
 * through rotations) does the handshake within `handshakeTimeoutMs`; the finished TLS socket
 * is handed to grpc-js through a connection injector. A connection with no call in flight is
 * closed after `idleTimeoutMs` (grpc.max_connection_idle_ms, a GOAWAY the client's channel
 * answers by reconnecting on its next call), so a finished handshake cannot hold a slot either.
 */
export interface IdentityServerOptions extends CertifierOptions {
  credentials: RotatingServerCredentials | grpc.ServerCredentials;
  /**
   * Largest request message, bytes (grpc.max_receive_message_length): a bigger one is
   * refused by grpc-js with RESOURCE_EXHAUSTED before it is decoded. Default 32 KiB —
   * room for the token and CSR limits plus framing.
   */
  maxMessageBytes?: number;
  /** Connection limits of the Certify listener; each has a documented default (IDENTITY_CONNECTION_DEFAULTS). */
  connections?: Partial<IdentityConnectionLimits> & { observer?: ListenerObserver };
  /**
   * meshlet.discovery.v1.Discovery/Resolve on the same listener (docs/discovery.md). With it,
   * the TLS listener asks every client for a certificate but does not require one (Certify's
   * callers have no SVID yet); Resolve verifies the chain itself.
   */
  discovery?: DiscoveryService;
  logger?: Logger;
  /**
   * The revocation list Certify enforces (CertifierOptions.revoked) and Revocations publishes
   * (docs/revocation.md). Absent: Revocations answers `enabled: false`.
   */
  revoked?: { has(spiffeId: string): boolean; current(): RevocationSet };
}

export interface IdentityConnectionLimits {
  /** Open connections at most; more are closed at accept and counted. */
  maxConnections: number;
  /** From accept to the end of the TLS handshake. */
  handshakeTimeoutMs: number;
  /** A connection with no call in flight for this long is closed (GOAWAY). */
  idleTimeoutMs: number;
}

export const IDENTITY_CONNECTION_DEFAULTS: Readonly<IdentityConnectionLimits> = Object.freeze({ maxConnections: 4096, handshakeTimeoutMs: 10_000, idleTimeoutMs: 300_000 });

export const DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024;

/** Offered by the TLS listener: gRPC is HTTP/2 only. */
const GRPC_ALPN = ['h2'];

/** A refusal as the caller sees it: the CertifyError's gRPC status, message and code (trailer meshlet-error-code). */
function grpcRefusal(err: unknown): Partial<grpc.StatusObject> {
  const e = err instanceof CertifyError ? err : new CertifyError('IDENTITY_SIGNING_FAILED', 'internal error');
  const metadata = new grpc.Metadata();
  metadata.set('meshlet-error-code', e.code);
  return { code: e.grpcStatus, details: e.message, metadata };
}

/** What the request deserializer returns when the bytes are not a CertifyRequest. */
interface MalformedRequest {
  malformed: string;
}

export class IdentityServer {
  readonly certifier: Certifier;
  readonly revocations: RevocationPublisher;
  readonly #server: grpc.Server;
  readonly #credentials: grpc.ServerCredentials;
  readonly #logger: Logger | undefined;
  readonly #limits: IdentityConnectionLimits;
  readonly #guard: ConnectionGuard;
  readonly #front: net.Server;
  readonly #discovery: DiscoveryService | undefined;
  #stopWatching: (() => void) | undefined;

  constructor(options: IdentityServerOptions) {
    this.certifier = new Certifier(options);
    this.revocations = new RevocationPublisher({ authenticator: options.authenticator, ...(options.revoked ? { list: options.revoked } : {}), ...(options.logger ? { logger: options.logger } : {}) });
    this.#credentials = options.credentials;
    this.#logger = options.logger;
    const max = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const { observer, ...limits } = options.connections ?? {};
    this.#limits = { ...IDENTITY_CONNECTION_DEFAULTS, ...limits };
    this.#guard = new ConnectionGuard({ listener: 'identity', maxConnections: this.#limits.maxConnections, ...(observer ? { observer } : {}) });
    this.#front = this.#guard.protect(net.createServer({ noDelay: true }));
    this.#server = new grpc.Server({
      'grpc.max_receive_message_length': max,
      'grpc.max_send_message_length': 1024 * 1024,
      // A few dozen concurrent Certify calls per connection is plenty; bounds memory per client.
      'grpc.max_concurrent_streams': 64,
      'grpc.max_connection_idle_ms': this.#limits.idleTimeoutMs,
    });
    const definition = identityServiceDefinition();
    const certify = definition['Certify']!;
    const revocations = definition['Revocations']!;
    // protobuf decoding errors would otherwise surface as INTERNAL; a request we cannot
    // decode is the caller's fault, so it becomes INVALID_ARGUMENT like every bad shape.
    const tolerant: grpc.ServiceDefinition = {
      Certify: {
        ...certify,
        requestDeserialize: (bytes: Buffer): CertifyRequestMessage | MalformedRequest => {
          try {
            return certify.requestDeserialize(bytes) as CertifyRequestMessage;
          } catch (err) {
            return { malformed: (err as Error).message };
          }
        },
      },
      Revocations: {
        ...revocations,
        requestDeserialize: (bytes: Buffer): RevocationsRequestMessage | MalformedRequest => {
          try {
            return revocations.requestDeserialize(bytes) as RevocationsRequestMessage;
          } catch (err) {
            return { malformed: (err as Error).message };
          }
        },
      },
    };
    this.#server.addService(tolerant, {
      Certify: (call: grpc.ServerUnaryCall<CertifyRequestMessage | MalformedRequest, CertifyResponseMessage>, callback: grpc.sendUnaryData<CertifyResponseMessage>) => {
        void this.#certify(call, callback);
      },
      Revocations: (call: grpc.ServerUnaryCall<RevocationsRequestMessage | MalformedRequest, RevocationsResponseMessage>, callback: grpc.sendUnaryData<RevocationsResponseMessage>) => {
        const req = call.request;
        const input = 'malformed' in req ? { token: undefined, known_sha256: undefined, malformed: req.malformed } : req;
        this.revocations.answer(input, call.getPeer()).then(
          (res) => callback(null, res),
          (err: unknown) => callback(grpcRefusal(err)),
        );
      },
    });
    this.#discovery = options.discovery;
    if (this.#discovery) {
      const { definition: discovery, implementation } = this.#discovery.grpcService();
      this.#server.addService(discovery, implementation);
    }
  }

  async #certify(
    call: grpc.ServerUnaryCall<CertifyRequestMessage | MalformedRequest, CertifyResponseMessage>,
    callback: grpc.sendUnaryData<CertifyResponseMessage>,
  ): Promise<void> {
    const peer = call.getPeer();
    try {
      const req = call.request;
      const input = 'malformed' in req ? { token: undefined, csr: undefined, malformed: req.malformed } : { token: req.token, csr: req.csr };
      const result = await this.certifier.certify(input, peer);
      callback(null, {
        cert_chain: result.certChain,
        bundle: result.bundle,
        not_after: Math.floor(result.notAfter.getTime() / 1000),
        spiffe_id: result.spiffeId,
      });
    } catch (err) {
      callback(grpcRefusal(err));
    }
  }

  /** Binds `host:port` (port 0 = any free port) and returns the bound port. */
  async listen(host: string, port: number): Promise<number> {
    this.#front.on('connection', this.#acceptor());
    await listenOn(this.#front, port, host);
    const bound = (this.#front.address() as net.AddressInfo).port;
    this.#logger?.info({ event: 'listening', address: `${host}:${bound}` }, 'identity service listening');
    return bound;
  }

  /** What becomes of an accepted socket: TLS here, then grpc-js (plaintext credentials: straight to grpc-js). */
  #acceptor(): (raw: net.Socket) => void {
    const credentials = this.#credentials;
    const secure = credentials._getSecureContextOptions();
    if (!credentials._isSecure() || secure === null) {
      const injector = this.#server.createConnectionInjector(credentials);
      return (raw) => injector.injectConnection(raw);
    }
    const injector = this.#server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const tlsServer = tls.createServer({
      ...credentials._getConstructorOptions(),
      ...secure,
      ALPNProtocols: GRPC_ALPN,
      handshakeTimeout: this.#limits.handshakeTimeoutMs,
      // Discovery callers authenticate with their SVID; Certify callers have none yet. Node
      // must not judge the certificate (its verdict is not SPIFFE's): Resolve does.
      ...(this.#discovery ? { requestCert: true, rejectUnauthorized: false } : {}),
    });
    this.#guard.closeFailedHandshakes(tlsServer);
    this.#discovery?.callers.attach(tlsServer);
    // A new serving certificate (RotatingServerCredentials.update) reaches the next handshakes.
    const follow = (next: tls.SecureContextOptions | null): void => {
      if (next !== null) tlsServer.setSecureContext(next);
    };
    credentials._addWatcher(follow);
    this.#stopWatching = () => credentials._removeWatcher(follow);
    tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
      // After the handshake the session's errors are grpc-js's; a reset must not be unhandled.
      socket.on('error', () => socket.destroy());
      injector.injectConnection(socket);
    });
    return (raw) => {
      raw.on('error', () => raw.destroy());
      tlsServer.emit('connection', raw);
    };
  }

  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cuts the rest. */
  close(graceMs = 10_000): Promise<void> {
    if (this.#front.listening) this.#front.close();
    this.#stopWatching?.();
    return new Promise((resolve) => {
      const force = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, graceMs);
      force.unref();
      this.#server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}
