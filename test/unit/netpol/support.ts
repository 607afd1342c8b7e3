import { NetworkPolicy as NetworkPolicyModel } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { join } from 'node:path';
import { expect } from 'vitest';
import { DEFAULT_NETPOL_OPTIONS, generateNetworkPolicies, type NetpolOptions, type NetpolResult } from '../../../src/control-plane/netpol/generate.ts';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';
import type { Policy } from '../../../src/data-plane/policy/types.ts';

/** Parses a policy as the CLI does; a test policy that does not parse is a broken test. */
export function policyFrom(yaml: string): Policy {
  const r = parsePolicy(yaml, 'test.yaml');
  if (r.ok) return r.policy;
  throw new Error(`test policy does not parse: ${r.errors.map((e) => `${e.code} ${e.path}: ${e.message}`).join('; ')}`);
}

/** Generates, and checks every object against the NetworkPolicy schema (kubernetes-models). */
export function generate(policy: Policy, options: Partial<NetpolOptions> = {}, namespace = policy.metadata?.namespace ?? 'shop'): NetpolResult {
  const result = generateNetworkPolicies([{ label: 'test.yaml', policy, namespace }], { ...DEFAULT_NETPOL_OPTIONS, ...options });
  for (const np of result.networkPolicies) expect(() => new NetworkPolicyModel(np as never).validate(), np.metadata.name).not.toThrow();
  return result;
}

/** A policy document around servers/clients written as YAML lists (indented as under `spec:`). */
export function doc(spec: string, metadata = 'name: orders\n  namespace: shop'): string {
  return `apiVersion: policy.meshlet.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  ${metadata}\nspec:\n${spec}`;
}

export const ADMIN_ANYWHERE = { ports: [{ protocol: 'TCP', port: 15020 }] };
export const DNS_RULE = {
  to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
  ports: [
    { protocol: 'UDP', port: 53 },
    { protocol: 'TCP', port: 53 },
  ],
};
export const IDENTITY_RULE = {
  to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'meshlet-system' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'meshlet-identity' } } }],
  ports: [{ protocol: 'TCP', port: 8443 }],
};
export const ns = (name: string) => ({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': name } } });
export const sa = (namespace: string, serviceAccount: string) => ({ ...ns(namespace), podSelector: { matchLabels: { 'meshlet.io/service-account': serviceAccount } } });
export const tcp = (...ports: number[]) => ports.map((port) => ({ protocol: 'TCP', port }));
export const ANYWHERE_BLOCKS = [{ ipBlock: { cidr: '0.0.0.0/0' } }, { ipBlock: { cidr: '::/0' } }];

export const NETPOL_DOC = join(import.meta.dirname, '../../../docs/network-policy.md');

/** The fenced block right after `<!-- marker -->` in the page, and where it is. */
export function docBlock(text: string, marker: string): { body: string; start: number; end: number } {
  const m = new RegExp(`<!-- ${marker} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\`\\n`).exec(text);
  if (!m) throw new Error(`docs/network-policy.md has no block after <!-- ${marker} -->`);
  const start = m.index + m[0].indexOf('\n', m[0].indexOf('```')) + 1;
  return { body: m[1]!, start, end: start + m[1]!.length };
}
