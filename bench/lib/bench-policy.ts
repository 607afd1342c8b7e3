import { parsePolicy } from '../../src/data-plane/policy/index.ts';
import { ECHO_SERVICE } from './grpc-echo.ts';

/** The path every HTTP scenario requests: allowed for the client pod's identity by the `bench` route. */
export const BENCH_PATH = '/api/items';
/** A path the policy closes to everyone: one request proves the policy is enforced, not bypassed. */
export const DENIED_PATH = '/admin/settings';

/**
 * The server pod's policy: a few routes of the shapes a real service has, so every request
 * is decided against a compiled policy (not an allow-all shortcut). Validated here with the
 * sidecar's own parser, so a bench with a broken policy fails at once, not as 403s under load.
 */
export function benchPolicyYaml(opts: { serverServiceAccount: string; clientId: string; httpPort: number; grpcPort: number; tcpPort: number }): string {
  const yaml = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: bench-server
spec:
  servers:
    - name: bench-server
      selector: { serviceAccount: ${opts.serverServiceAccount} }
      default: deny
      ports:
        - { port: ${opts.httpPort}, protocol: http }
        - { port: ${opts.grpcPort}, protocol: grpc }
        - { port: ${opts.tcpPort}, protocol: tcp }
      routes:
        - name: bench
          port: ${opts.httpPort}
          methods: [GET]
          path: { prefix: /api }
          callers: [{ spiffeId: "${opts.clientId}" }]
        - name: health
          port: ${opts.httpPort}
          path: { exact: /healthz }
          callers: [{ anyAuthenticated: true }]
        - name: admin
          port: ${opts.httpPort}
          path: { prefix: /admin }
          callers: []
        - name: orders-write
          port: ${opts.httpPort}
          methods: [POST, PUT]
          path: { pattern: /api/*/orders }
          callers: [{ namespace: shop }]
        - name: echo
          port: ${opts.grpcPort}
          grpc: { service: ${ECHO_SERVICE} }
          callers: [{ spiffeId: "${opts.clientId}" }]
        - name: tcp-echo
          port: ${opts.tcpPort}
          callers: [{ spiffeId: "${opts.clientId}" }]
`;
  const parsed = parsePolicy(yaml, 'bench policy');
  if (!parsed.ok) throw new Error(`the bench policy is invalid: ${parsed.errors.map((e) => e.message).join('; ')}`);
  return yaml;
}
