import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/**
 * The discovery protocol (meshlet_discovery.proto), loaded once for the identity service (the
 * server) and the sidecar (the client, next step: docs/discovery.md). Field names keep the
 * proto's snake_case; enums arrive as their names ('MESHED', …).
 */
export const DISCOVERY_PROTO_PATH = fileURLToPath(new URL('./meshlet_discovery.proto', import.meta.url));
export const RESOLVE_METHOD_PATH = '/meshlet.discovery.v1.Discovery/Resolve';

export type DiscoveryKindName = 'MESHED' | 'UNMESHED' | 'MIXED' | 'EXTERNAL' | 'UNKNOWN';

export interface ResolveRequestMessage {
  host: string;
  port: number;
}

export interface EndpointMessage {
  address: string;
  port: number;
  identity: string;
  ready: boolean;
}

export interface ResolveResponseMessage {
  kind: DiscoveryKindName;
  identities: string[];
  protocol: string;
  endpoints: EndpointMessage[];
  endpoints_truncated: boolean;
  service: string;
  external_name: string;
  reason: string;
}

let cached: grpc.ServiceDefinition | undefined;

/** The Discovery service definition (serializers for both sides). */
export function discoveryServiceDefinition(): grpc.ServiceDefinition {
  if (cached) return cached;
  const pkg = protoLoader.loadSync(DISCOVERY_PROTO_PATH, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  cached = pkg['meshlet.discovery.v1.Discovery'] as grpc.ServiceDefinition;
  return cached;
}
