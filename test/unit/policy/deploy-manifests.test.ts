import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ValidatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { parsePolicyManifest } from '../../../src/data-plane/policy/parse.ts';

const DEPLOY = join(import.meta.dirname, '../../../deploy/policy');
const read = (name: string) => readFileSync(join(DEPLOY, name), 'utf8');

describe('deploy/policy manifests', () => {
  it('the ValidatingWebhookConfiguration is schema-valid and selects labelled ConfigMaps for /validate', () => {
    const doc = parse(read('validating-webhook.yaml'));
    const config = new ValidatingWebhookConfiguration(doc);
    expect(() => config.validate()).not.toThrow();
    const hook = config.webhooks![0]!;
    expect(hook.objectSelector?.matchLabels).toEqual({ 'meshlet.io/policy': 'true' });
    expect(hook.clientConfig.service?.path).toBe('/validate');
    expect(hook.rules![0]!.resources).toEqual(['configmaps']);
    expect(hook.admissionReviewVersions).toEqual(['v1']);
    expect(hook.sideEffects).toBe('None');
  });

  it('the example policy ConfigMap is a valid ConfigMap, carries the label, and its policy passes check', () => {
    const text = read('example-policy-configmap.yaml');
    const cm = new ConfigMap(parse(text));
    expect(() => cm.validate()).not.toThrow();
    expect(cm.metadata?.labels?.['meshlet.io/policy']).toBe('true');
    const found = parsePolicyManifest(text, 'example-policy-configmap.yaml');
    expect(found.map((f) => f.result)).toMatchObject([{ ok: true, warnings: [] }]);
  });
});
