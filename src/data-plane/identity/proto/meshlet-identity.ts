import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/**
 * The Certify protocol, loaded from src/data-plane/identity/proto/meshlet_identity.proto (one source of
 * truth for the server and the meshlet-ca source). Field names keep the proto's
 * snake_case; int64 arrives as a JS number (unix seconds fit easily); bytes as Buffer.
 */
export const IDENTITY_PROTO_PATH = fileURLToPath(new URL('./meshlet_identity.proto', import.meta.url));
export const CERTIFY_METHOD_PATH = '/meshlet.identity.v1.Identity/Certify';
export const REVOCATIONS_METHOD_PATH = '/meshlet.identity.v1.Identity/Revocations';

export interface RevocationsRequestMessage {
  token: string;
  known_sha256: string;
}

export interface RevocationsResponseMessage {
  enabled: boolean;
  sha256: string;
  list: Buffer;
}

export interface CertifyRequestMessage {
  token: string;
  csr: Buffer;
}

export interface CertifyResponseMessage {
  cert_chain: Buffer[];
  bundle: Buffer[];
  not_after: number;
  spiffe_id: string;
}

let cached: grpc.ServiceDefinition | undefined;

/** The Identity service definition (serializers for both sides). */
export function identityServiceDefinition(): grpc.ServiceDefinition {
  if (cached) return cached;
  const pkg = protoLoader.loadSync(IDENTITY_PROTO_PATH, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  cached = pkg['meshlet.identity.v1.Identity'] as grpc.ServiceDefinition;
  return cached;
}
