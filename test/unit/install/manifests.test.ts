// The names `meshlet install` and `meshlet check` use are the ones the committed base
// (src/control-plane/install/control-plane.yaml) and the injector use; how objects are merged
// and ordered; how the kubeconfig is read.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TRUST_DOMAIN } from '../../../src/cli/commands/install.ts';
import { formatDuration } from '../../../src/common/config/duration.ts';
import { CHECK_NAMES, DEFAULT_MIN_VALIDITY_MS } from '../../../src/control-plane/install/checks.ts';
import { TRUST_BUNDLE_CONFIGMAP } from '../../../src/control-plane/injector/patch/pod-layout.ts';
import { buildInstallObjects, containersOf, loadBase, NAMES, toYaml, webhookService, type K8sObject } from '../../../src/control-plane/install/manifests.ts';
import { KubeConfigError, resolveTarget } from '../../../src/control-plane/install/kube-client.ts';
import { createWebhookServingCert, DEFAULT_INJECTOR_CERT_TTL_MS, serviceDnsNames } from '../../../src/control-plane/install/webhook-cert.ts';

const base = loadBase();
const find = (objects: K8sObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
type Volume = { secret?: { secretName: string } };
const secretVolumes = (o: K8sObject | undefined) =>
  (((o?.['spec'] as { template: { spec: { volumes?: Volume[] } } } | undefined)?.template.spec.volumes ?? []).map((v) => v.secret?.secretName).filter(Boolean));

describe('the names install and check use', () => {
  it('match the committed base', () => {
    expect(find(base, 'Namespace', NAMES.namespace)).toBeDefined();
    expect(secretVolumes(find(base, 'Deployment', NAMES.identityDeployment))).toContain(NAMES.caSecret);
    expect(secretVolumes(find(base, 'Deployment', NAMES.injectorDeployment))).toContain(NAMES.injectorTlsSecret);
    expect(find(base, 'Service', NAMES.identityService)).toBeDefined();
    expect(find(base, 'Service', NAMES.injectorService)).toBeDefined();
    expect(find(base, 'MutatingWebhookConfiguration', NAMES.mutatingWebhook)).toBeDefined();
    expect(find(base, 'ValidatingWebhookConfiguration', NAMES.validatingWebhook)).toBeDefined();
    expect(webhookService(base)).toEqual({ name: NAMES.injectorService, namespace: NAMES.namespace });
    expect(NAMES.trustBundleConfigMap).toBe(TRUST_BUNDLE_CONFIGMAP);
    for (const o of base) if (o.metadata.namespace) expect(o.metadata.namespace).toBe(NAMES.namespace);
    expect(containersOf(base).length).toBeGreaterThanOrEqual(2);
  });
});

describe('buildInstallObjects', () => {
  const ca = { trustDomain: 'td.example', files: { 'ca.crt': 'C', 'ca.key': 'K', 'bundle.crt': 'B' }, bundlePem: 'B' };
  it('replaces an object of the base with the same kind, namespace and name (a trust bundle ConfigMap deploy/ might render), never duplicates', async () => {
    const webhook = await createWebhookServingCert({ dnsNames: serviceDnsNames('meshlet-injector', 'meshlet-system') });
    const withBundle: K8sObject[] = [...base, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: NAMES.trustBundleConfigMap, namespace: NAMES.namespace }, data: { 'bundle.crt': '' } }];
    const out = buildInstallObjects(withBundle, { ca, webhook, trustBundleNamespaces: [NAMES.namespace, 'shop'] });
    const bundles = out.filter((o) => o.kind === 'ConfigMap' && o.metadata.name === NAMES.trustBundleConfigMap);
    expect(bundles.map((o) => o.metadata.namespace)).toEqual([NAMES.namespace, 'shop']);
    for (const b of bundles) expect(b['data']).toEqual({ 'bundle.crt': 'B' });
    // The base passed in is not modified.
    expect(JSON.stringify(base)).not.toContain(Buffer.from(webhook.caPem).toString('base64'));
  });

  it('toYaml: one document per object, YAML 1.1 quoting for kubectl', () => {
    const text = toYaml([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { a: 'yes', b: 'on', c: '0440' } }], ['a header']);
    expect(text).toBe('# a header\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: "yes"\n  b: "on"\n  c: "0440"\n');
  });
});

describe('resolveTarget (kubeconfig)', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'meshlet-kubeconfig-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });
  const write = async (name: string, config: unknown) => {
    const p = join(tmp, name);
    await writeFile(p, JSON.stringify(config));
    return p;
  };
  const config = (cluster: object, user: object, extra: object = {}) => ({
    'current-context': 'a',
    contexts: [{ name: 'a', context: { cluster: 'c', user: 'u' } }, { name: 'b', context: { cluster: 'c', user: 'other' } }],
    clusters: [{ name: 'c', cluster }],
    users: [{ name: 'u', user }, { name: 'other', user: { token: 'other-token' } }],
    ...extra,
  });

  it('reads files relative to the kubeconfig, data fields, a token file, and --context', async () => {
    await writeFile(join(tmp, 'ca.pem'), 'CA PEM');
    await writeFile(join(tmp, 'client.crt'), 'CERT');
    await writeFile(join(tmp, 'token'), 'file-token\n');
    const p = await write('k1', config({ server: 'https://k:6443', 'certificate-authority': 'ca.pem', 'tls-server-name': 'kubernetes' }, { 'client-certificate': 'client.crt', 'client-key-data': Buffer.from('KEY').toString('base64'), tokenFile: 'token' }));
    expect(await resolveTarget({ kubeconfig: p })).toMatchObject({ source: p, context: 'a', server: 'https://k:6443', ca: 'CA PEM', cert: 'CERT', key: 'KEY', token: 'file-token', servername: 'kubernetes', insecure: false });
    expect(await resolveTarget({ kubeconfig: p, context: 'b' })).toMatchObject({ context: 'b', token: 'other-token' });
  });

  it('refuses an auth-provider with what to use instead, and names what is missing', async () => {
    const p = await write('k2', config({ server: 'https://k' }, { 'auth-provider': { name: 'gcp' } }));
    await expect(resolveTarget({ kubeconfig: p })).rejects.toThrow(/uses an auth-provider, .*exec plugin/);
    const noServer = await write('k3', config({}, { token: 't' }));
    await expect(resolveTarget({ kubeconfig: noServer })).rejects.toThrow(`${noServer}: cluster "c" has no server`);
    const noCurrent = await write('k4', config({ server: 'https://k' }, {}, { 'current-context': '' }));
    await expect(resolveTarget({ kubeconfig: noCurrent })).rejects.toBeInstanceOf(KubeConfigError);
  });

  it('without --kubeconfig: $KUBECONFIG (first existing file), then ~/.kube/config', async () => {
    const p = await write('k5', config({ server: 'https://from-env' }, { token: 't' }));
    expect((await resolveTarget({ env: { KUBECONFIG: `${join(tmp, 'absent')}:${p}`, HOME: tmp } })).server).toBe('https://from-env');
    await expect(resolveTarget({ env: { HOME: tmp } })).rejects.toThrow(`cannot read kubeconfig ${join(tmp, '.kube', 'config')}: ENOENT`);
  });
});

describe('docs/install.md states what the commands do', () => {
  const doc = readFileSync(new URL('../../../docs/install.md', import.meta.url), 'utf8');
  it('every check, in order, with a row of its own', () => {
    const rows = [...doc.matchAll(/^\| `([a-z-]+)` \| /gm)].map((m) => m[1]).filter((n) => (CHECK_NAMES as readonly string[]).includes(n!));
    expect(rows).toEqual([...CHECK_NAMES]);
  });
  it('the defaults of the flags', () => {
    expect(doc).toContain(`| \`--min-validity DUR\` | \`${formatDuration(DEFAULT_MIN_VALIDITY_MS)}\` |`);
    expect(doc).toContain(`| \`--injector-cert-ttl DUR\` | \`${formatDuration(DEFAULT_INJECTOR_CERT_TTL_MS)}\` |`);
    expect(doc).toContain(`| \`--trust-domain TD\` | \`${DEFAULT_TRUST_DOMAIN}\` |`);
    const images = [...new Set(containersOf(base).map((c) => c.container.image))];
    expect(images).toHaveLength(1);
    expect(doc).toContain(`| \`--image REF\` | the image in \`deploy/\` (\`${images[0]}\`) |`);
  });
});
