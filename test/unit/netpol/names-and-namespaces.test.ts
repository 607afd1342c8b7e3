// Names, namespaces and CIDRs of the generated NetworkPolicies (docs/network-policy.md
// "Workloads", "Usage"): deterministic DNS labels, the namespace rule, canonical ipBlocks.
import { describe, expect, it } from 'vitest';
import { canonicalCidr } from '../../../src/control-plane/netpol/cidr.ts';
import { DEFAULT_NETPOL_OPTIONS, generateNetworkPolicies, NetpolError, policyNamespace } from '../../../src/control-plane/netpol/generate.ts';
import { isDnsLabel, networkPolicyName } from '../../../src/control-plane/netpol/name.ts';
import { renderNetworkPolicies } from '../../../src/control-plane/netpol/render.ts';
import { doc, policyFrom } from './support.ts';

describe('names', () => {
  it('meshlet-<policy>-<entries>, each entry name once', () => {
    expect(networkPolicyName('orders', ['orders', 'orders'])).toBe('meshlet-orders-orders');
    expect(networkPolicyName('orders', ['api', 'orders'])).toBe('meshlet-orders-api-orders');
    expect(networkPolicyName(undefined, ['api'])).toBe('meshlet-api');
  });

  it('characters a DNS label cannot hold: changed, and a hash keeps the result apart from a policy really named so', () => {
    const dotted = networkPolicyName('orders.v2', ['api']);
    expect(isDnsLabel(dotted)).toBe(true);
    expect(dotted).toMatch(/^meshlet-orders-v2-api-[0-9a-f]{8}$/);
    expect(dotted).not.toBe(networkPolicyName('orders-v2', ['api']));
  });

  it('too long: at most 63, its first characters and 8 hex digits, the same on every run, different for different parts', () => {
    const a = networkPolicyName('p'.repeat(40), ['server-with-a-long-name', 'client-one']);
    const b = networkPolicyName('p'.repeat(40), ['server-with-a-long-name', 'client-two']);
    for (const n of [a, b]) {
      expect(n.length).toBeLessThanOrEqual(63);
      expect(isDnsLabel(n)).toBe(true);
    }
    expect(a).toMatch(/^meshlet-p{40}-serve-[0-9a-f]{8}$/);
    expect(a).toHaveLength(63);
    expect(a).toBe(networkPolicyName('p'.repeat(40), ['server-with-a-long-name', 'client-one']));
    expect(a).not.toBe(b);
  });

  it('two policies making the same name in one namespace: NETPOL_NAME_COLLISION, never two objects with one name', () => {
    const policy = policyFrom(doc('  servers:\n    - name: api\n      selector: { serviceAccount: api }\n      default: deny\n      ports: [{ port: 8080, protocol: http }]\n      routes: [{ name: r, callers: [{ namespace: web }] }]\n'));
    const inputs = [
      { label: 'a.yaml', policy, namespace: 'shop' },
      { label: 'b.yaml', policy, namespace: 'shop' },
    ];
    expect(() => generateNetworkPolicies(inputs, DEFAULT_NETPOL_OPTIONS)).toThrow(NetpolError);
    expect(() => generateNetworkPolicies(inputs, DEFAULT_NETPOL_OPTIONS)).toThrow('b.yaml and a.yaml both make NetworkPolicy shop/meshlet-orders-api');
    // Another namespace is another object.
    expect(generateNetworkPolicies([inputs[0]!, { ...inputs[1]!, namespace: 'web' }], DEFAULT_NETPOL_OPTIONS).networkPolicies).toHaveLength(2);
  });
});

describe('the namespace', () => {
  const withNs = policyFrom(doc('  servers:\n    - name: api\n      selector: { serviceAccount: api }\n      ports: [{ port: 8080, protocol: http }]\n      routes: []\n'));
  const withoutNs = policyFrom(doc('  servers:\n    - name: api\n      selector: { serviceAccount: api }\n      ports: [{ port: 8080, protocol: http }]\n      routes: []\n', 'name: orders'));

  it("the policy's own, or --namespace; both must agree; neither is an error naming the flag", () => {
    expect(policyNamespace(withNs, 'p.yaml', undefined)).toBe('shop');
    expect(policyNamespace(withNs, 'p.yaml', 'shop')).toBe('shop');
    expect(policyNamespace(withoutNs, 'p.yaml', 'web')).toBe('web');
    expect(() => policyNamespace(withNs, 'p.yaml', 'web')).toThrow('p.yaml: the policy is for namespace shop (metadata.namespace), not web (--namespace)');
    expect(() => policyNamespace(withoutNs, 'p.yaml', undefined)).toThrow('p.yaml: the policy has no metadata.namespace: pass --namespace NS, the namespace of its workloads');
  });
});

describe('CIDRs', () => {
  it('the network address, IPv6 in its shortest form; null for anything else', () => {
    expect(canonicalCidr('10.1.2.3/8')).toBe('10.0.0.0/8');
    expect(canonicalCidr('10.0.0.0/8')).toBe('10.0.0.0/8');
    expect(canonicalCidr('192.168.1.10/32')).toBe('192.168.1.10/32');
    expect(canonicalCidr('0.0.0.0/0')).toBe('0.0.0.0/0');
    expect(canonicalCidr('FD00:0:0:0:0:0:0:1/64')).toBe('fd00::/64');
    expect(canonicalCidr('2001:db8:0:1:0:0:0:1/128')).toBe('2001:db8:0:1::1/128');
    expect(canonicalCidr('::/0')).toBe('::/0');
    expect(canonicalCidr('2001:db8::1:0:0:1/128')).toBe('2001:db8::1:0:0:1/128');
    for (const bad of ['10.0.0.0', '10.0.0.0/33', 'fd00::/129', 'fe80::1%eth0/64', 'example.com/8', '10.0.0.0/x', '/8']) expect(canonicalCidr(bad), bad).toBeNull();
  });
});

describe('the output', () => {
  it('a header comment, then one document per NetworkPolicy; the same input gives the same bytes', () => {
    const policy = policyFrom(doc('  servers:\n    - name: api\n      selector: { serviceAccount: api }\n      default: deny\n      ports: [{ port: 8080, protocol: http }]\n      routes: [{ name: r, callers: [{ namespace: web }] }]\n    - name: jobs\n      selector: { serviceAccount: jobs }\n      default: deny\n      ports: [{ port: 9000, protocol: tcp }]\n      routes: [{ name: j, callers: [{ namespace: web }] }]\n'));
    const render = () => renderNetworkPolicies(generateNetworkPolicies([{ label: 'p.yaml', policy, namespace: 'shop' }], DEFAULT_NETPOL_OPTIONS).networkPolicies, ['p.yaml']);
    const text = render();
    expect(text).toBe(render());
    expect(text.startsWith('# Generated by `meshlet policy netpol` from p.yaml (docs/network-policy.md).\n')).toBe(true);
    expect(text.split('\n---\n')).toHaveLength(2);
    expect(renderNetworkPolicies([], ['p.yaml'])).toContain('# (no NetworkPolicy: see the warnings)');
  });
});
