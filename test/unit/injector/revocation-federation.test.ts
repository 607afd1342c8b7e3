import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { readSidecarConfig, type IdentitySourceKind } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { applyJsonPatch, DEFAULT_INJECTION_SETTINGS, injectPod, PodRefusedError, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { runCli } from './cli-support.ts';
import { loadPod } from './golden-support.ts';

/**
 * What the injector adds for revocation (docs/revocation.md) and federation
 * (docs/identity-sources.md "Federation"), per identity source (docs/injector.md "What a pod gets"):
 *   meshlet-ca    MESHLET_REVOCATION_LIST=meshlet-ca (no list mounted), the meshlet-federation volume
 *   files         the meshlet-revocations volume and its path, the meshlet-federation volume
 *   workload-api  the meshlet-revocations volume and its path, never federation (SPIRE does it)
 */
type EnvEntry = { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } };
type Container = { name: string; env: EnvEntry[]; volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] };
type Volume = { name: string; configMap?: { name: string; optional?: boolean; items?: unknown } };

function injected(identitySource: IdentitySourceKind): { proxy: Container; volumes: Volume[]; pod: Pod } {
  const pod = loadPod('plain');
  pod.metadata = { ...pod.metadata, annotations: { 'meshlet.io/identity-source': identitySource } };
  const result = injectPod(pod, 'shop', DEFAULT_INJECTION_SETTINGS);
  if (result.outcome !== 'injected') throw new Error(`not injected: ${result.message}`);
  const out = applyJsonPatch(pod, result.patch);
  const proxy = (out.spec.initContainers as unknown as Container[]).find((c) => c.name === 'meshlet-proxy')!;
  return { proxy, volumes: out.spec.volumes as unknown as Volume[], pod: out };
}

const envOf = (c: Container, name: string): string | undefined => c.env.find((e) => e.name === name)?.value;
const mountOf = (c: Container, name: string) => c.volumeMounts.find((m) => m.name === name);
const volumeOf = (volumes: Volume[], name: string) => volumes.find((v) => v.name === name);

/** The proxy's environment as kubelet would hand it over (downward API resolved). */
function resolvedEnv(c: Container): Record<string, string> {
  const fields: Record<string, string> = { 'metadata.namespace': 'shop', 'metadata.name': 'plain', 'spec.serviceAccountName': 'default' };
  return Object.fromEntries(c.env.map((e) => [e.name, e.valueFrom ? fields[e.valueFrom.fieldRef.fieldPath]! : e.value!]));
}

const REVOCATIONS_VOLUME = { name: 'meshlet-revocations', configMap: { name: 'meshlet-revocations', optional: true } };
const REVOCATIONS_MOUNT = { name: 'meshlet-revocations', mountPath: '/etc/meshlet/revocations', readOnly: true };
const FEDERATION_VOLUME = { name: 'meshlet-federation', configMap: { name: 'meshlet-federation', optional: true } };
const FEDERATION_MOUNT = { name: 'meshlet-federation', mountPath: '/var/run/meshlet/federation', readOnly: true };

describe('revocation and federation in the injected pod, per identity source', () => {
  it('meshlet-ca (the default): the identity service\'s list, no list mounted; federation mounted', () => {
    const { proxy, volumes } = injected('meshlet-ca');
    expect(envOf(proxy, 'MESHLET_REVOCATION_LIST')).toBe('meshlet-ca');
    expect(mountOf(proxy, 'meshlet-revocations')).toBeUndefined();
    expect(volumeOf(volumes, 'meshlet-revocations')).toBeUndefined();
    expect(envOf(proxy, 'MESHLET_FEDERATION_BUNDLES')).toBe('/var/run/meshlet/federation');
    expect(mountOf(proxy, 'meshlet-federation')).toEqual(FEDERATION_MOUNT);
    expect(volumeOf(volumes, 'meshlet-federation')).toEqual(FEDERATION_VOLUME);
  });

  it('meshlet-ca is also what a pod without the annotation gets', () => {
    const pod = loadPod('plain');
    const result = injectPod(pod, 'shop', DEFAULT_INJECTION_SETTINGS);
    if (result.outcome !== 'injected') throw new Error('not injected');
    const proxy = (applyJsonPatch(pod, result.patch).spec.initContainers as unknown as Container[]).find((c) => c.name === 'meshlet-proxy')!;
    expect(envOf(proxy, 'MESHLET_REVOCATION_LIST')).toBe('meshlet-ca');
    expect(envOf(proxy, 'MESHLET_FEDERATION_BUNDLES')).toBe('/var/run/meshlet/federation');
  });

  it('files: the namespace\'s revocation list mounted and named; federation mounted', () => {
    const { proxy, volumes } = injected('files');
    expect(envOf(proxy, 'MESHLET_REVOCATION_LIST')).toBe('/etc/meshlet/revocations/revocations.json');
    expect(mountOf(proxy, 'meshlet-revocations')).toEqual(REVOCATIONS_MOUNT);
    expect(volumeOf(volumes, 'meshlet-revocations')).toEqual(REVOCATIONS_VOLUME);
    expect(envOf(proxy, 'MESHLET_FEDERATION_BUNDLES')).toBe('/var/run/meshlet/federation');
    expect(mountOf(proxy, 'meshlet-federation')).toEqual(FEDERATION_MOUNT);
    expect(volumeOf(volumes, 'meshlet-federation')).toEqual(FEDERATION_VOLUME);
  });

  it('workload-api: the namespace\'s revocation list mounted and named; no federation at all (SPIRE federates)', () => {
    const { proxy, volumes } = injected('workload-api');
    expect(envOf(proxy, 'MESHLET_REVOCATION_LIST')).toBe('/etc/meshlet/revocations/revocations.json');
    expect(mountOf(proxy, 'meshlet-revocations')).toEqual(REVOCATIONS_MOUNT);
    expect(volumeOf(volumes, 'meshlet-revocations')).toEqual(REVOCATIONS_VOLUME);
    expect(proxy.env.map((e) => e.name)).not.toContain('MESHLET_FEDERATION_BUNDLES');
    expect(mountOf(proxy, 'meshlet-federation')).toBeUndefined();
    expect(volumeOf(volumes, 'meshlet-federation')).toBeUndefined();
  });

  it.each(['meshlet-ca', 'files', 'workload-api'] as const)('%s: the sidecar accepts the environment, and every path it is given is mounted', (source) => {
    const { proxy } = injected(source);
    // readSidecarConfig throws on the combinations the sidecar refuses at start (federation with
    // workload-api, revocation from meshlet-ca with another source).
    const config = readSidecarConfig(resolvedEnv(proxy));
    expect(config.identitySource).toBe(source);
    const mounted = (path: string) => proxy.volumeMounts.some((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
    if (config.revocationList !== 'meshlet-ca') expect(mounted(config.revocationList!)).toBe(true);
    if (config.federationBundles !== '') expect(mounted(config.federationBundles)).toBe(true);
  });

  it.each(['meshlet-revocations', 'meshlet-federation'])('refuses a pod that already has a volume named %s (INJECTOR_NAME_CONFLICT)', (name) => {
    const pod = loadPod('plain');
    pod.spec.volumes = [{ name, emptyDir: {} }];
    let err: unknown;
    try {
      injectPod(pod, 'shop', DEFAULT_INJECTION_SETTINGS);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PodRefusedError);
    expect((err as PodRefusedError).code).toBe('INJECTOR_NAME_CONFLICT');
    expect((err as PodRefusedError).problems).toEqual([`the pod already has a volume named ${name}`]);
  });
});

describe('`meshlet identity revoke --configmap` prints the ConfigMap the injector mounts', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshlet-injector-revocations-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('same name, and its key is the file MESHLET_REVOCATION_LIST names inside the mount', async () => {
    const { code, stdout, stderr } = await runCli(['identity', 'revoke', 'spiffe://cluster.local/ns/shop/sa/orders', '--list', join(dir, 'revocations.json'), '--configmap', 'shop']);
    expect(code, stderr).toBe(0);
    const [configMap] = parseAllDocuments(stdout).map((d) => d.toJS());
    const { proxy, volumes } = injected('files');
    const path = envOf(proxy, 'MESHLET_REVOCATION_LIST')!;
    expect(configMap.metadata).toMatchObject({ name: volumeOf(volumes, 'meshlet-revocations')!.configMap!.name, namespace: 'shop' });
    expect(Object.keys(configMap.data)).toEqual([basename(path)]);
    expect(mountOf(proxy, 'meshlet-revocations')!.mountPath).toBe(dirname(path));
    expect(JSON.parse(configMap.data[basename(path)]).revoked.map((e: { spiffeId: string }) => e.spiffeId)).toEqual(['spiffe://cluster.local/ns/shop/sa/orders']);
  });
});

describe("docs/injector.md's table of revocation and federation per identity source is what the injector does", () => {
  const doc = readFileSync(new URL('../../../docs/injector.md', import.meta.url), 'utf8');
  const header = '| identity source | `MESHLET_REVOCATION_LIST` | `MESHLET_FEDERATION_BUNDLES` | volumes added |';
  const table = doc.slice(doc.indexOf(header), doc.indexOf('\n\n', doc.indexOf(header))).split('\n').slice(2);
  /** The first `code` span of a cell, or null when the cell has none ("not set …"). */
  const code = (cell: string) => /`([^`]+)`/.exec(cell)?.[1] ?? null;

  it('has one row per identity source', () => {
    expect(table.map((row) => code(row.split('|')[1]!))).toEqual(['meshlet-ca', 'files', 'workload-api']);
  });

  for (const row of table) {
    const [, sourceCell, revocationCell, federationCell, volumesCell] = row.split('|');
    const source = code(sourceCell!) as IdentitySourceKind;
    it(`${source}: the env values and the volumes added`, () => {
      const { proxy, volumes } = injected(source);
      expect(envOf(proxy, 'MESHLET_REVOCATION_LIST')).toBe(code(revocationCell!));
      expect(envOf(proxy, 'MESHLET_FEDERATION_BUNDLES') ?? null).toBe(code(federationCell!));
      const documented = [...volumesCell!.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
      expect(volumes.map((v) => v.name).filter((n) => n === 'meshlet-revocations' || n === 'meshlet-federation')).toEqual(documented);
    });
  }
});
