// Hostile and oversized policy documents, each named after what is wrong with it. Built in
// code (not committed files) so the sizes follow POLICY_LIMITS.
import { POLICY_LIMITS } from '../../../src/data-plane/policy/limits.ts';

const HEAD = `apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  servers:
`;

/** A one-server policy allowing `caller` on /orders; `port` is the app port. */
export function goodPolicy(caller: string, port = 8080): string {
  return `${HEAD}    - name: orders
      selector: { serviceAccount: orders }
      ports: [{ port: ${port}, protocol: http }]
      routes:
        - name: orders
          path: { prefix: /orders }
          callers: [{ spiffeId: "${caller}" }]
`;
}

/**
 * "Billion laughs": nine levels of nine aliases each, 9^9 (387 million) list items once
 * expanded, in 600 bytes. The anchors sit inside a valid-looking policy, so only alias
 * expansion stands between this and an exhausted heap.
 */
export function aliasBombPolicy(): string {
  const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'];
  const lines = [`metadata: { name: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"] }`];
  for (let i = 1; i < levels.length; i++) {
    const prev = levels[i - 1]!;
    lines.push(`x-${levels[i]}: &${levels[i]} [${Array(9).fill(`*${prev}`).join(',')}]`);
  }
  return `apiVersion: policy.meshlet.io/v1alpha1\nkind: AuthorizationPolicy\n${lines.join('\n')}\nspec: { servers: *i }\n`;
}

/** The classic bare bomb: not even shaped like a policy. */
export function bareAliasBomb(): string {
  const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'];
  const lines = [`a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]`];
  for (let i = 1; i < levels.length; i++) lines.push(`${levels[i]}: &${levels[i]} [${Array(9).fill(`*${levels[i - 1]}`).join(',')}]`);
  return lines.join('\n') + '\n';
}

/** One caller list anchored once and reused by `uses` routes: legitimate sharing. */
export function sharedCallersPolicy(uses: number): string {
  const routes = Array.from({ length: uses }, (_, i) =>
    i === 0
      ? `        - { name: r-0, path: { exact: /r/0 }, callers: &web [{ namespace: web }, { namespace: ops }] }`
      : `        - { name: r-${i}, path: { exact: /r/${i} }, callers: *web }`,
  );
  return `${HEAD}    - name: orders
      selector: { serviceAccount: orders }
      ports: [{ port: 8080, protocol: http }]
      routes:
${routes.join('\n')}
`;
}

/** A valid-looking server with `n` routes, written compactly (about 110 B a route). */
export function manyRoutesPolicy(n: number, opts: { verbose?: boolean } = {}): string {
  const routes = Array.from({ length: n }, (_, i) =>
    opts.verbose
      ? `        - name: route-${i}\n          methods: [GET, POST]\n          path: { prefix: /api/v1/service-${i}/items }\n          callers:\n            - spiffeId: spiffe://cluster.local/ns/web/sa/frontend-${i % 50}\n            - namespace: ops`
      : `        - { name: r-${i}, methods: [GET], path: { exact: /api/v1/res${i}/items }, callers: [{ namespace: ns${i % 50} }] }`,
  );
  return `${HEAD}    - name: orders
      selector: { serviceAccount: orders }
      ports: [{ port: 8080, protocol: http }]
      routes:
${routes.join('\n')}
`;
}

/** One over the per-server route cap. */
export function overRouteCapPolicy(): string {
  return manyRoutesPolicy(POLICY_LIMITS.maxRoutesPerServer + 1);
}

/** A route list of the full per-server size, aliased into many servers: over the per-policy cap through aliases. */
export function aliasedRoutesPolicy(servers: number): string {
  const routes = Array.from({ length: POLICY_LIMITS.maxRoutesPerServer }, (_, i) => `        - { name: r-${i}, path: { exact: /r/${i} }, callers: [] }`);
  const rest = Array.from({ length: servers - 1 }, (_, s) => `    - { name: s-${s + 1}, selector: { serviceAccount: s${s + 1} }, ports: [{ port: 8080, protocol: http }], routes: *routes }`);
  return `${HEAD}    - name: s-0
      selector: { serviceAccount: s0 }
      ports: [{ port: 8080, protocol: http }]
      routes: &routes
${routes.join('\n')}
${rest.join('\n')}
`;
}

/** Padding past the document byte cap, in a YAML comment (so only the size is wrong). */
export function oversizedPolicy(): string {
  const base = goodPolicy('spiffe://cluster.local/ns/web/sa/frontend');
  const pad = '#' + 'x'.repeat(1022) + '\n';
  return base + pad.repeat(Math.ceil((POLICY_LIMITS.maxDocumentBytes - base.length) / pad.length) + 1);
}

/** Flow collections nested `depth` deep: the yaml composer recurses on each level. */
export function deeplyNestedPolicy(depth: number): string {
  return `apiVersion: policy.meshlet.io/v1alpha1\nkind: AuthorizationPolicy\nspec: ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
}
