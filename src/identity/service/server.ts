import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Certifier, type CertifierOptions } from './certify.ts';
import { CertifyError } from './errors.ts';
import { identityServiceDefinition, type CertifyRequestMessage, type CertifyResponseMessage } from './proto.ts';
import type { RotatingServerCredentials } from './serving-identity.ts';

/**
 * The gRPC face of the identity service: `meshlet.identity.v1.Identity/Certify` over TLS.
 * All decisions live in Certifier; this file only moves bytes and maps CertifyError to a
 * gRPC status (the one place that does).
 */
export interface IdentityServerOptions extends CertifierOptions {
  credentials: RotatingServerCredentials | grpc.ServerCredentials;
  /**
   * Largest request message, bytes (grpc.max_receive_message_length): a bigger one is
   * refused by grpc-js with RESOURCE_EXHAUSTED before it is decoded. Default 32 KiB —
   * room for the token and CSR limits plus framing.
   */
  maxMessageBytes?: number;
  logger?: Logger;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024;

/** What the request deserializer returns when the bytes are not a CertifyRequest. */
interface MalformedRequest {
  malformed: string;
}

export class IdentityServer {
  readonly certifier: Certifier;
  readonly #server: grpc.Server;
  readonly #credentials: grpc.ServerCredentials;
  readonly #logger: Logger | undefined;

  constructor(options: IdentityServerOptions) {
    this.certifier = new Certifier(options);
    this.#credentials = options.credentials;
    this.#logger = options.logger;
    const max = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#server = new grpc.Server({
      'grpc.max_receive_message_length': max,
      'grpc.max_send_message_length': 1024 * 1024,
      // A few dozen concurrent Certify calls per connection is plenty; bounds memory per client.
      'grpc.max_concurrent_streams': 64,
    });
    const definition = identityServiceDefinition();
    const certify = definition['Certify']!;
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
    };
    this.#server.addService(tolerant, {
      Certify: (call: grpc.ServerUnaryCall<CertifyRequestMessage | MalformedRequest, CertifyResponseMessage>, callback: grpc.sendUnaryData<CertifyResponseMessage>) => {
        void this.#certify(call, callback);
      },
    });
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
      const e = err instanceof CertifyError ? err : new CertifyError('IDENTITY_SIGNING_FAILED', 'internal error');
      const metadata = new grpc.Metadata();
      metadata.set('meshlet-error-code', e.code);
      callback({ code: e.grpcStatus, details: e.message, metadata });
    }
  }

  /** Binds `host:port` (port 0 = any free port) and returns the bound port. */
  listen(host: string, port: number): Promise<number> {
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(address, this.#credentials, (err, bound) => {
        if (err) reject(err);
        else {
          this.#logger?.info({ event: 'listening', address: `${host}:${bound}` }, 'identity service listening');
          resolve(bound);
        }
      });
    });
  }

  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cuts the rest. */
  close(graceMs = 10_000): Promise<void> {
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
