// One setting changes meshlet's version everywhere: deploy/'s `images:` (what `kustomize edit set
// image` writes), or an overlay's, rewrites every container image of the control plane AND
// MESHLET_INJECTOR_PROXY_IMAGE, the image the injector puts into pods
// (deploy/kustomizeconfig/images.yaml). Rendered with the built kubectl's kustomize; no API
// server is started (the cluster suite is where that kubectl is guaranteed to exist).
import { execFile } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { findBinaries } from './binaries.ts';
import { clusterSkip, DEPLOY, tempDir, type K8sObject } from './support.ts';

const CERT_MANAGER_OVERLAY = join(DEPLOY, '..', 'deploy-cert-manager');
const IMAGE_NAME = 'ghcr.io/meshlet/meshlet';
const PROXY_IMAGE_ENV = 'MESHLET_INJECTOR_PROXY_IMAGE';

type Container = { name: string; image: string; env?: { name: string; value?: string }[] };
type Workload = K8sObject & { spec: { template: { spec: { containers: Container[]; initContainers?: Container[] } } } };

function kustomize(dir: string): Promise<K8sObject[]> {
  return new Promise((resolve, reject) => {
    execFile(findBinaries().paths.kubectl, ['kustomize', dir], { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubectl kustomize ${dir}: ${stderr || err.message}`));
      else resolve(parseAllDocuments(stdout).map((d) => d.toJS() as K8sObject).filter((o) => o && o.kind));
    });
  });
}

/** Every image a rendered install runs or injects: container images, and the injector's proxy image. */
function imagesOf(objects: K8sObject[]): { containers: Record<string, string>; injected: string | undefined } {
  const containers: Record<string, string> = {};
  let injected: string | undefined;
  for (const o of objects.filter((x) => x.kind === 'Deployment') as Workload[]) {
    const pod = o.spec.template.spec;
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      containers[`${o.metadata.name}/${c.name}`] = c.image;
      const env = c.env?.find((e) => e.name === PROXY_IMAGE_ENV);
      if (env) injected = env.value;
    }
  }
  return { containers, injected };
}

/** What the tests expect: every container of both Deployments, and the injected image, equal to `image`. */
function expectEverywhere(objects: K8sObject[], image: string): void {
  const { containers, injected } = imagesOf(objects);
  expect(Object.keys(containers).sort()).toEqual(['meshlet-identity/identity', 'meshlet-injector/injector']);
  expect({ containers, injected }).toEqual({ containers: Object.fromEntries(Object.keys(containers).map((k) => [k, image])), injected: image });
}

function envOf(objects: K8sObject[]): { name: string; value?: string }[] {
  return (objects.filter((o) => o.kind === 'Deployment') as Workload[]).flatMap((d) => d.spec.template.spec.containers.flatMap((c) => c.env ?? []));
}

const skip = clusterSkip();

describe.skipIf(skip)('one image setting reaches every container and the injected sidecar', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  /** The base's own `images:` entry: newTag 0.1.0 as shipped. */
  let shipped: string;

  beforeAll(async () => {
    work = await tempDir('meshlet-deploy-images-');
    const entry = (parse(readFileSync(join(DEPLOY, 'kustomization.yaml'), 'utf8')).images as { name: string; newTag: string }[]).find((i) => i.name === IMAGE_NAME)!;
    shipped = `${IMAGE_NAME}:${entry.newTag}`;
  });
  afterAll(async () => {
    await work?.cleanup();
  });

  /** An overlay in a temp dir: `resources: [base]` (a relative path; kustomize refuses absolute ones) and `images:`. */
  async function overlay(name: string, base: string, images: Record<string, string>[]): Promise<string> {
    const dir = join(work.dir, name);
    await mkdir(dir);
    writeFileSync(join(dir, 'kustomization.yaml'), stringify({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: [relative(dir, base)], images }));
    return dir;
  }

  it('as shipped: deploy/ and deploy-cert-manager/ run and inject the image of deploy/kustomization.yaml', async () => {
    expect(shipped).toMatch(/^ghcr\.io\/meshlet\/meshlet:\d+\.\d+\.\d+$/);
    expectEverywhere(await kustomize(DEPLOY), shipped);
    expectEverywhere(await kustomize(CERT_MANAGER_OVERLAY), shipped);
  });

  it('`kustomize edit set image ghcr.io/meshlet/meshlet=registry.example/meshlet:1.2.3` in a copy of deploy/ (the images entry it writes)', async () => {
    const copy = join(work.dir, 'deploy');
    cpSync(DEPLOY, copy, { recursive: true });
    const file = join(copy, 'kustomization.yaml');
    const spec = parse(readFileSync(file, 'utf8'));
    // What `kustomize edit set image NAME=NEWNAME:TAG` leaves: the entry of NAME replaced.
    spec.images = (spec.images as { name: string }[]).map((i) => (i.name === IMAGE_NAME ? { name: IMAGE_NAME, newName: 'registry.example/meshlet', newTag: '1.2.3' } : i));
    writeFileSync(file, stringify(spec));
    expectEverywhere(await kustomize(copy), 'registry.example/meshlet:1.2.3');
  });

  it("an overlay's images: (newName + newTag) on deploy/", async () => {
    const dir = await overlay('mirror', DEPLOY, [{ name: IMAGE_NAME, newName: 'registry.example/mirror/meshlet', newTag: '2.0.0-rc.1' }]);
    const objects = await kustomize(dir);
    expectEverywhere(objects, 'registry.example/mirror/meshlet:2.0.0-rc.1');
    // Only values naming the image are rewritten: every other env value is as the base wrote it.
    const otherEnv = (objs: K8sObject[]) => envOf(objs).filter((e) => e.name !== PROXY_IMAGE_ENV);
    expect(otherEnv(objects)).toEqual(otherEnv(await kustomize(DEPLOY)));
  });

  it("an overlay's images: (a digest) on deploy-cert-manager/, an overlay of an overlay", async () => {
    const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
    const dir = await overlay('pinned', CERT_MANAGER_OVERLAY, [{ name: IMAGE_NAME, newName: 'registry.example/meshlet', digest }]);
    const objects = await kustomize(dir);
    expectEverywhere(objects, `registry.example/meshlet@${digest}`);
    // Still the cert-manager install: its objects and annotations are all there.
    expect(objects.filter((o) => o.apiVersion === 'cert-manager.io/v1').map((o) => o.kind).sort()).toEqual(['Certificate', 'Certificate', 'Issuer', 'Issuer']);
  });

  it('an images: entry for another image leaves meshlet and the other env values alone', async () => {
    const dir = await overlay('other', DEPLOY, [{ name: 'registry.example/unrelated', newTag: '9.9.9' }]);
    const objects = await kustomize(dir);
    expectEverywhere(objects, shipped);
    expect(envOf(objects)).toEqual(envOf(await kustomize(DEPLOY)));
  });
});
