// Suite 3: deploy/'s ValidatingWebhookConfiguration (only clientConfig pointed at the host
// injector's /validate) in front of a real API server: `kubectl apply` of a policy ConfigMap
// with errors is refused and kubectl prints every error with its location; a valid one is
// stored; an edit that breaks a stored policy is refused and the stored one stays.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { clusterSkip, DEPLOY, deployWebhookOnHost, namespace, startHostInjector, tempDir, useControlPlane, type HostInjector, type K8sObject } from './support.ts';

type ConfigMap = K8sObject & { data: Record<string, string> };

/** deploy/'s example policy ConfigMap (namespace shop), valid as shipped. */
const VALID = parse(readFileSync(join(DEPLOY, 'policy', 'example-policy-configmap.yaml'), 'utf8')) as ConfigMap;
const FRONTEND = 'spiffe://cluster.local/ns/web/sa/frontend';

/** The same ConfigMap with both callers of `frontend` written as https URLs: two errors. */
function broken(): ConfigMap {
  const cm = structuredClone(VALID);
  cm.data['policy.yaml'] = cm.data['policy.yaml']!.replaceAll(`spiffeId: ${FRONTEND}`, 'spiffeId: https://cluster.local/ns/web/sa/frontend');
  return cm;
}

const skip = clusterSkip();

describe.skipIf(skip)('policy ConfigMaps through the real validating webhook', () => {
  const cluster = useControlPlane();
  let work: Awaited<ReturnType<typeof tempDir>>;
  let injector: HostInjector;
  const apply = (cm: ConfigMap) => cluster().kubectl(['apply', '-f', '-'], { input: stringify(cm) });

  beforeAll(async () => {
    work = await tempDir('meshlet-cluster-policy-');
    const cp = cluster();
    injector = await startHostInjector(work.dir);
    await deployWebhookOnHost(cp, 'ValidatingWebhookConfiguration', injector.url, injector.caPem);
    await namespace(cp, VALID.metadata.namespace!);
  });
  afterAll(async () => {
    await injector?.stop();
    await work?.cleanup();
  });

  it('a policy with errors is refused and kubectl shows every error with its location', async () => {
    const r = await apply(broken());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('admission webhook "policy.validate.meshlet.io" denied the request');
    expect(r.stderr).toContain('invalid meshlet policy (2 errors)');
    // file:line:col inside the ConfigMap's key, then the path in the document.
    const located = r.stderr.match(/ConfigMap shop\/orders-policy data\[policy\.yaml\]:\d+:\d+: error POLICY_BAD_SPIFFE_ID at spec\.servers\[0\]\.routes\[\d\]\.callers\[0\]\.spiffeId/g) ?? [];
    expect(located, r.stderr).toHaveLength(2);
    expect((await cluster().api('GET', '/api/v1/namespaces/shop/configmaps/orders-policy')).status).toBe(404);
  });

  it('a valid policy is accepted and stored', async () => {
    const r = await apply(VALID);
    expect(r.code, r.stderr).toBe(0);
    const stored = JSON.parse(await cluster().kubectlOk(['-n', 'shop', 'get', 'configmap', 'orders-policy', '-o', 'json'])) as ConfigMap;
    expect(stored.data['policy.yaml']).toBe(VALID.data['policy.yaml']);
  });

  it('an edit that breaks the stored policy is refused; the valid one stays', async () => {
    const r = await apply(broken());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('POLICY_BAD_SPIFFE_ID');
    const edit = await cluster().kubectl(['-n', 'shop', 'patch', 'configmap', 'orders-policy', '--type=merge', '-p', JSON.stringify({ data: { 'extra.yaml': 'kind: Nonsense' } })]);
    expect(edit.code).not.toBe(0);
    expect(edit.stderr).toContain('data[extra.yaml]');
    const stored = JSON.parse(await cluster().kubectlOk(['-n', 'shop', 'get', 'configmap', 'orders-policy', '-o', 'json'])) as ConfigMap;
    expect(Object.keys(stored.data)).toEqual(['policy.yaml']);
    expect(stored.data['policy.yaml']).toBe(VALID.data['policy.yaml']);
  });

  it('ConfigMaps without the policy label never reach the webhook', async () => {
    const r = await cluster().kubectl(['-n', 'shop', 'create', 'configmap', 'not-a-policy', '--from-literal=policy.yaml=kind: Nonsense']);
    expect(r.code, r.stderr).toBe(0);
  });
});
