// Issue 17: `meshlet install` prints a whole installation for `kubectl apply -f -` — the
// committed control plane (src/control-plane/install/control-plane.yaml) plus the CA Secret,
// the injector's serving certificate and the trust bundle ConfigMaps (docs/install.md).
import { X509Certificate } from 'node:crypto';
import { readFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import { connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadBase, type K8sObject } from '../../../src/control-plane/install/manifests.ts';
import { run } from '../../unit/cli/run.ts';

let tmp: string;
let rootCa: string;
let intermediateCa: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'meshlet-install-'));
  rootCa = join(tmp, 'root');
  intermediateCa = join(tmp, 'intermediate');
  expect((await run('ca', 'init', '--trust-domain', 'install.example', '--out', rootCa)).code).toBe(0);
  expect((await run('ca', 'init', '--intermediate-of', rootCa, '--out', intermediateCa)).code).toBe(0);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function parse(stdout: string): K8sObject[] {
  return parseAllDocuments(stdout, { version: '1.1' }).map((d) => {
    expect(d.errors).toEqual([]);
    return d.toJS() as K8sObject;
  });
}

const id = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const find = (objects: K8sObject[], kind: string, name: string, namespace?: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
const secretData = (o: K8sObject | undefined) => Object.fromEntries(Object.entries((o?.['data'] as Record<string, string>) ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));

type Container = { name: string; image: string; env?: { name: string; value?: string }[] };
function containers(objects: K8sObject[]): Container[] {
  return objects.flatMap((o) => {
    const spec = (o['spec'] as { template?: { spec?: { containers?: Container[]; initContainers?: Container[] } } } | undefined)?.template?.spec;
    return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
  });
}

/** One line on stderr, with a code, no stack trace. */
function expectOneCodedLine(stderr: string, code: string) {
  expect(stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(stderr).toMatch(new RegExp(`^meshlet install: ${code}: `));
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('meshlet install', () => {
  it('prints every object of the committed base plus the Secrets and ConfigMaps, in apply order', async () => {
    const r = await run('install', '--ca-dir', rootCa, '--namespace', 'shop', '--namespace', 'web', '--namespace', 'shop');
    expect(r.code, r.stderr).toBe(0);
    const objects = parse(r.stdout);
    const base = loadBase();
    expect(base.length).toBeGreaterThan(10);
    const ids = objects.map(id);
    for (const o of base) expect(ids).toContain(id(o));
    const added = objects.filter((o) => !base.some((b) => id(b) === id(o))).map(id).sort();
    expect(added).toEqual(['ConfigMap/shop/meshlet-trust-bundle', 'ConfigMap/web/meshlet-trust-bundle', 'Secret/meshlet-system/meshlet-identity-ca', 'Secret/meshlet-system/meshlet-injector-tls']);
    expect(new Set(ids).size).toBe(ids.length);
    // Namespace first; Secrets and ConfigMaps before the Deployments that mount them; webhooks last.
    const kinds = objects.map((o) => o.kind);
    expect(kinds[0]).toBe('Namespace');
    const last = (k: string) => kinds.lastIndexOf(k);
    const first = (k: string) => kinds.indexOf(k);
    expect(Math.max(last('Secret'), last('ConfigMap'))).toBeLessThan(first('Deployment'));
    expect(kinds.slice(-2).sort()).toEqual(['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);
    // Everything but the rewritten fields is the base as kustomize rendered it.
    const svc = find(objects, 'Service', 'meshlet-identity')!;
    expect(svc).toEqual(find(base, 'Service', 'meshlet-identity'));
    for (const o of objects) expect(o.metadata.labels?.['app.kubernetes.io/part-of']).toBe('meshlet');
    expect(r.stderr).toContain(`meshlet install: mesh CA from ${rootCa} (trust domain install.example, valid until `);
  });

  it('--ca-dir: the CA files go into the Secret verbatim, the trust domain into the Deployments, the roots into the trust bundles', async () => {
    const r = await run('install', '--ca-dir', intermediateCa, '--namespace', 'shop');
    expect(r.code, r.stderr).toBe(0);
    const objects = parse(r.stdout);
    const ca = find(objects, 'Secret', 'meshlet-identity-ca', 'meshlet-system')!;
    expect(ca['type']).toBe('Opaque');
    const files = secretData(ca);
    expect(Object.keys(files).sort()).toEqual(['bundle.crt', 'ca.crt', 'ca.key', 'chain.crt']);
    for (const f of Object.keys(files)) expect(files[f]).toBe(await readFile(join(intermediateCa, f), 'utf8'));
    const bundle = find(objects, 'ConfigMap', 'meshlet-trust-bundle', 'shop')!;
    expect(bundle['data']).toEqual({ 'bundle.crt': await readFile(join(rootCa, 'bundle.crt'), 'utf8') });
    const tds = containers(objects).flatMap((c) => (c.env ?? []).filter((e) => e.name === 'MESHLET_TRUST_DOMAIN').map((e) => e.value));
    expect(tds.length).toBeGreaterThanOrEqual(2);
    expect(new Set(tds)).toEqual(new Set(['install.example']));
  });

  it('--image sets every container and the injected sidecar image (MESHLET_INJECTOR_PROXY_IMAGE)', async () => {
    const image = 'registry.example:5000/mirror/meshlet@sha256:' + 'a'.repeat(64);
    const r = await run('install', '--ca-dir', rootCa, '--image', image);
    expect(r.code, r.stderr).toBe(0);
    const objects = parse(r.stdout);
    const all = containers(objects);
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const c of all) expect(c.image, c.name).toBe(image);
    const proxyImage = all.flatMap((c) => c.env ?? []).filter((e) => e.name === 'MESHLET_INJECTOR_PROXY_IMAGE');
    expect(proxyImage).toHaveLength(1);
    expect(proxyImage[0]!.value).toBe(image);
    // Without --image: the base's image, everywhere the same.
    const plain = containers(parse((await run('install', '--ca-dir', rootCa)).stdout));
    const baseImages = new Set(containers(loadBase()).map((c) => c.image));
    expect(new Set(plain.map((c) => c.image))).toEqual(baseImages);
  });

  it("the injector's certificate verifies against both webhooks' caBundle for the Service's DNS name (a real TLS handshake)", async () => {
    const r = await run('install', '--ca-dir', rootCa);
    const objects = parse(r.stdout);
    const tls = find(objects, 'Secret', 'meshlet-injector-tls', 'meshlet-system')!;
    expect(tls['type']).toBe('kubernetes.io/tls');
    const { 'tls.crt': cert, 'tls.key': key, 'ca.crt': caCrt } = secretData(tls) as Record<string, string>;
    const bundles = objects
      .filter((o) => o.kind.endsWith('WebhookConfiguration'))
      .flatMap((o) => (o['webhooks'] as { clientConfig: { caBundle: string; service: { name: string; namespace: string } } }[]).map((w) => w.clientConfig));
    expect(bundles).toHaveLength(2);
    const host = `${bundles[0]!.service.name}.${bundles[0]!.service.namespace}.svc`;
    expect(host).toBe('meshlet-injector.meshlet-system.svc');
    for (const b of bundles) expect(Buffer.from(b.caBundle, 'base64').toString('utf8')).toBe(caCrt);
    // Not the mesh CA.
    expect(caCrt).not.toBe(await readFile(join(rootCa, 'ca.crt'), 'utf8'));
    const leaf = new X509Certificate(cert!);
    expect(leaf.checkHost(host)).toBe(host);
    expect(leaf.verify(new X509Certificate(caCrt!).publicKey)).toBe(true);

    const server = createServer({ cert, key }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const authorized = await new Promise<boolean>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: host, ca: caCrt }, () => {
          resolve(s.authorized);
          s.end();
        });
        s.on('error', reject);
      });
      expect(authorized).toBe(true);
    } finally {
      server.close();
    }
  });

  it('private keys appear only in the Secrets', async () => {
    const r = await run('install', '--namespace', 'shop');
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('PRIVATE KEY');
    const objects = parse(r.stdout);
    for (const o of objects) {
      const text = JSON.stringify(o.kind === 'Secret' ? { ...o, data: undefined } : o);
      expect(text, id(o)).not.toContain('PRIVATE KEY');
    }
    expect(secretData(find(objects, 'Secret', 'meshlet-identity-ca'))['ca.key']).toContain('PRIVATE KEY');
    expect(secretData(find(objects, 'Secret', 'meshlet-injector-tls'))['tls.key']).toContain('PRIVATE KEY');
  });

  it('is stable: the same inputs give the same output except key material', async () => {
    const strip = (stdout: string) =>
      parse(stdout).map((o) => {
        if (o.kind === 'Secret' && o.metadata.name === 'meshlet-injector-tls') return { ...o, data: 'KEY MATERIAL' };
        if (!o.kind.endsWith('WebhookConfiguration')) return o;
        return { ...o, webhooks: (o['webhooks'] as { clientConfig: object }[]).map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: 'KEY MATERIAL' } })) };
      });
    const a = await run('install', '--ca-dir', rootCa, '--namespace', 'shop', '--image', 'example.com/m:1');
    const b = await run('install', '--ca-dir', rootCa, '--namespace', 'shop', '--image', 'example.com/m:1');
    expect(strip(a.stdout)).toEqual(strip(b.stdout));
    expect(a.stdout).not.toBe(b.stdout);
  });

  it('without --ca-dir: a new root CA, said on stderr to be unsaved; --ca-out saves it as `ca init` does', async () => {
    const r = await run('install', '--trust-domain', 'fresh.example');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^meshlet install: generated a new root CA for trust domain fresh\.example \(valid until \S+\); it is not saved anywhere but in Secret meshlet-system\/meshlet-identity-ca of this output: pass --ca-out DIR to keep it, then --ca-dir DIR on every later run/m);
    const files = secretData(find(parse(r.stdout), 'Secret', 'meshlet-identity-ca'));
    expect(Object.keys(files).sort()).toEqual(['bundle.crt', 'ca.crt', 'ca.key']);
    expect(new X509Certificate(files['ca.crt']!).subjectAltName).toBe('URI:spiffe://fresh.example');

    const out = join(tmp, 'saved');
    const s = await run('install', '--ca-out', out);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toContain(`saved in ${out}; install with --ca-dir ${out} from now on`);
    const saved = secretData(find(parse(s.stdout), 'Secret', 'meshlet-identity-ca'));
    for (const f of ['ca.crt', 'ca.key', 'bundle.crt']) expect(saved[f]).toBe(await readFile(join(out, f), 'utf8'));
    expect(new X509Certificate(saved['ca.crt']!).subjectAltName).toBe('URI:spiffe://cluster.local');
    // And --ca-out never overwrites a CA.
    const again = await run('install', '--ca-out', out);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expectOneCodedLine(again.stderr, 'CA_ALREADY_EXISTS');
    expect(again.stderr).toContain(`to install with that CA pass --ca-dir ${out}`);
  });

  it('a bad --ca-dir is one coded line, exit 1, nothing on stdout', async () => {
    const missing = await run('install', '--ca-dir', join(tmp, 'nope'));
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expectOneCodedLine(missing.stderr, 'CA_FILE_MISSING');
    expect(missing.stderr).toContain(join(tmp, 'nope', 'ca.crt'));

    const corrupt = join(tmp, 'corrupt');
    await mkdir(corrupt);
    await writeFile(join(corrupt, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n');
    await writeFile(join(corrupt, 'ca.key'), await readFile(join(rootCa, 'ca.key'), 'utf8'));
    const c = await run('install', '--ca-dir', corrupt);
    expect(c.code).toBe(1);
    expect(c.stdout).toBe('');
    expectOneCodedLine(c.stderr, 'CA_CERT_CORRUPT');

    const mismatch = join(tmp, 'mismatch');
    await mkdir(mismatch);
    await writeFile(join(mismatch, 'ca.crt'), await readFile(join(rootCa, 'ca.crt'), 'utf8'));
    await writeFile(join(mismatch, 'ca.key'), await readFile(join(intermediateCa, 'ca.key'), 'utf8'));
    const m = await run('install', '--ca-dir', mismatch);
    expect(m.code).toBe(1);
    expectOneCodedLine(m.stderr, 'CA_KEY_MISMATCH');
  });

  it.each([
    [['--ca-dir', 'x', '--ca-out', 'y'], '--ca-dir and --ca-out exclude each other'],
    [['--namespace', 'Not_A_Namespace'], '--namespace "Not_A_Namespace" is not a namespace name'],
    [['--image', 'has space:1'], '--image "has space:1" is not an image reference'],
    [['--trust-domain', 'bad domain!'], '--trust-domain "bad domain!" is not a valid trust domain'],
    [['--injector-cert-ttl', '90'], '--injector-cert-ttl "90" has no unit'],
    [['--image'], '--image needs a value'],
    [['extra'], 'unexpected argument "extra"'],
  ])('usage error %j exits 2', async (args, message) => {
    const r = await run('install', ...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`meshlet install: ${message}`);
  });

  it('--trust-domain that differs from the --ca-dir CA is a usage error; a mistyped flag suggests the right one', async () => {
    const r = await run('install', '--ca-dir', rootCa, '--trust-domain', 'other.example');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--trust-domain other.example differs from the trust domain of the CA in ${rootCa} (install.example)`);
    const typo = await run('install', '--ca-dri', rootCa);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe('meshlet install: unknown flag --ca-dri (did you mean --ca-dir?)\nRun `meshlet install --help` for its flags.\n');
  });

  it('--help documents every flag and exits 0', async () => {
    const r = await run('install', '--help');
    expect(r.code).toBe(0);
    for (const flag of ['--ca-dir', '--ca-out', '--trust-domain', '--namespace', '--image', '--injector-cert-ttl']) expect(r.stdout).toContain(flag);
    expect(r.stdout).toContain('(default cluster.local)');
    expect(r.stdout).toContain('(default 365d)');
    const top = await run('--help');
    expect(top.stdout).toMatch(/\n {2}install {2,}print the manifests/);
    expect(top.stdout).toMatch(/\n {2}check {2,}verify a running installation/);
  });
});
