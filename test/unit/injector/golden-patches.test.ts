import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fastJsonPatch from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { describe, expect, it } from 'vitest';
import { applyJsonPatch, DEFAULT_INJECTION_SETTINGS, injectPod, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { GOLDEN_DIR, podFixtures } from './golden-support.ts';

/**
 * The reviewed golden patches (linkerd2 proxy-injector style): a change to what the injector
 * adds to a pod is a change to a file under test/fixtures/injector/golden/, visible in review.
 * Regenerate with UPDATE_GOLDEN=1 npx vitest run test/unit/injector/golden-patches.test.ts,
 * then READ the diff.
 */
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const fixtures = podFixtures();

function namespaceOf(pod: Pod): string {
  return pod.metadata?.namespace ?? 'default';
}

describe('golden patches', () => {
  it('has a fixture for every case the issue names', () => {
    const names = fixtures.map((f) => f.name);
    for (const n of ['plain', 'several-containers', 'existing-init-containers', 'named-and-unnamed-ports', 'every-probe-kind', 'restrictive-security-context', 'already-injected', 'opted-out', 'host-network', 'kube-system']) {
      expect(names).toContain(n);
    }
  });

  it('the schema check can fail: a pod with a string containerPort is rejected', () => {
    const bad = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [{ name: 'a', image: 'i', ports: [{ containerPort: 'http' }] }] } };
    expect(() => new PodModel(bad as never).validate()).toThrow();
  });

  for (const { name, pod } of fixtures) {
    describe(name, () => {
      const result = injectPod(pod, namespaceOf(pod), DEFAULT_INJECTION_SETTINGS);
      const goldenFile = join(GOLDEN_DIR, `${name}.json`);

      it('equals the reviewed golden file', () => {
        const text = JSON.stringify(result, null, 2) + '\n';
        if (UPDATE) writeFileSync(goldenFile, text);
        expect(existsSync(goldenFile), `missing ${goldenFile}: run with UPDATE_GOLDEN=1 and review it`).toBe(true);
        expect(JSON.parse(text)).toEqual(JSON.parse(readFileSync(goldenFile, 'utf8')));
      });

      if (result.outcome !== 'injected') return;
      const patch = result.patch;

      it('applies cleanly with an independent RFC 6902 library (validation on)', () => {
        const validationError = fastJsonPatch.validate(patch as fastJsonPatch.Operation[], structuredClone(pod));
        expect(validationError).toBeUndefined();
        const patched = fastJsonPatch.applyPatch(structuredClone(pod), patch as fastJsonPatch.Operation[], true, false).newDocument;
        // meshlet inject uses its own small applier: it must agree with the reference one.
        expect(applyJsonPatch(pod, patch)).toEqual(patched);
      });

      it('yields a pod that validates against the Kubernetes schema', () => {
        const patched = applyJsonPatch(pod, patch);
        expect(() => new PodModel(patched as never).validate()).not.toThrow();
      });

      it('is idempotent: injecting the injected pod changes nothing', () => {
        const once = applyJsonPatch(pod, patch);
        const again = injectPod(once, namespaceOf(pod), DEFAULT_INJECTION_SETTINGS);
        expect(again).toMatchObject({ outcome: 'skipped', reason: 'already-injected' });
      });

      it('leaves the input pod untouched', () => {
        expect(pod).toEqual(podFixtures().find((f) => f.name === name)!.pod);
      });
    });
  }
});
