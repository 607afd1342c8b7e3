// Issue 17: `meshlet check` end to end without a cluster: the CLI in-process against an HTTPS
// stand-in for the API server that serves what `meshlet install` printed (with the status a
// running installation has) and answers the dry runs as the API server does with a working
// injector. test/cluster/install-check.test.ts runs the same command against a real API server.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CHECK_NAMES } from '../../../src/control-plane/install/checks.ts';
import type { K8sObject } from '../../../src/control-plane/install/manifests.ts';
import { loopbackServerCert } from '../identity-service/support.ts';
import { run } from '../../unit/cli/run.ts';
import { formatRevocationList } from '../../../src/data-plane/identity/revocation/revocation-list.ts';

const TOKEN = 'check-test-token';
let tmp: string;
let server: Server;
let url: string;
let serverCa: string;
let installed: K8sObject[];
/** path -> object, rebuilt from `installed` before each test; tests break it. */
let objects: Map<string, unknown>;
let requests: string[];
let injectorUp: boolean;

function pathOf(o: K8sObject): string {
  const ns = o.metadata.namespace;
  const plural = `${o.kind.toLowerCase()}s`;
  if (o.apiVersion === 'v1') return ns ? `/api/v1/namespaces/${ns}/${plural}/${o.metadata.name}` : `/api/v1/${plural}/${o.metadata.name}`;
  return ns ? `/apis/${o.apiVersion}/namespaces/${ns}/${plural}/${o.metadata.name}` : `/apis/${o.apiVersion}/${plural}/${o.metadata.name}`;
}

function reset() {
  objects = new Map();
  for (const o of installed) {
    const copy = structuredClone(o);
    if (o.kind === 'Deployment') copy['status'] = { replicas: 2, availableReplicas: 2, conditions: [{ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' }] };
    objects.set(pathOf(copy), copy);
  }
  objects.set('/apis/discovery.k8s.io/v1/namespaces/meshlet-system/endpointslices', { items: [{ endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true } }, { addresses: ['10.0.0.2'], conditions: {} }] }] });
  requests = [];
  injectorUp = true;
}

const status = (code: number, message: string) => ({ kind: 'Status', status: 'Failure', code, message });

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'meshlet-check-'));
  const r = await run('install', '--trust-domain', 'check.example');
  expect(r.code).toBe(0);
  installed = parseAllDocuments(r.stdout, { version: '1.1' }).map((d) => d.toJS() as K8sObject);
  const tls = await loopbackServerCert();
  serverCa = tls.certPem;
  server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const u = new URL(req.url!, 'https://x');
      requests.push(`${req.method} ${u.pathname}${u.search}`);
      const send = (code: number, o: unknown) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(o));
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(401, status(401, 'Unauthorized'));
      if (u.pathname === '/version') return send(200, { gitVersion: 'v1.99.0-standin' });
      if (req.method === 'POST' && u.pathname === '/api/v1/namespaces') return send(201, JSON.parse(body));
      if (req.method === 'DELETE') return send(200, {});
      if (/^\/api\/v1\/namespaces\/meshlet-check-[0-9a-f]{8}\/serviceaccounts\/default$/.test(u.pathname)) return send(200, {});
      if (req.method === 'POST' && u.searchParams.get('dryRun') === 'All') {
        if (!injectorUp) return send(500, status(500, 'Internal error occurred: failed calling webhook "inject.meshlet.io": failed to call webhook: Post "https://meshlet-injector.meshlet-system.svc:443/mutate?timeout=5s": no endpoints available for service "meshlet-injector"'));
        const o = JSON.parse(body) as K8sObject & { spec?: { initContainers?: { name: string }[] } };
        if (o.kind === 'ConfigMap') return send(400, status(400, 'admission webhook "policy.validate.meshlet.io" denied the request: ConfigMap x is labelled as a meshlet policy but has no data key ending in .yaml or .yml'));
        o.metadata.name = `${o.metadata['generateName']}abcde`;
        o.metadata['annotations'] = { 'meshlet.io/status': '{}' };
        o.spec!.initContainers = [{ name: 'meshlet-init' }, { name: 'meshlet-proxy' }];
        return send(201, o);
      }
      const key = u.pathname + (u.pathname.endsWith('/endpointslices') ? '' : '');
      const o = objects.get(key);
      if (o === undefined) return send(404, status(404, `${u.pathname} not found`));
      return send(200, o);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(reset);

async function kubeconfig(name: string, user: Record<string, unknown> = { token: TOKEN }, server = url): Promise<string> {
  const file = join(tmp, name);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'standin',
    clusters: [{ name: 'standin', cluster: { server, 'certificate-authority-data': Buffer.from(serverCa).toString('base64') } }],
    users: [{ name: 'me', user }],
    contexts: [{ name: 'standin', context: { cluster: 'standin', user: 'me' } }],
  };
  await writeFile(file, JSON.stringify(config));
  return file;
}

function parseCheck(stdout: string) {
  const out = new Map<string, { status: string; line: string; fix?: string }>();
  let last: { status: string; line: string; fix?: string } | undefined;
  for (const line of stdout.split('\n')) {
    const m = /^(ok|FAIL|skip)\s+(\S+)\s+(.*)$/.exec(line);
    if (m) out.set(m[2]!, (last = { status: m[1]!, line: m[3]! }));
    else if (/^\s+fix: /.test(line) && last) last.fix = line.trim().slice(5);
  }
  return out;
}

describe('meshlet check', () => {
  it('a healthy installation: one ok line per check, a summary, exit 0; the temporary namespace is deleted', async () => {
    const r = await run('check', '--kubeconfig', await kubeconfig('ok.yaml'));
    expect(r.stderr).toBe('');
    expect(r.code, r.stdout).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(CHECK_NAMES.length + 1);
    expect(lines.slice(0, -1).map((l) => l.split(/\s+/)[1])).toEqual([...CHECK_NAMES]);
    for (const l of lines.slice(0, -1)) expect(l).toMatch(/^ok {4}/);
    expect(lines.at(-1)).toBe('12 checks: 12 ok, 0 failed');
    const res = parseCheck(r.stdout);
    expect(res.get('api-server')!.line).toBe(`${url} answers, Kubernetes v1.99.0-standin (${join(tmp, 'ok.yaml')}, context standin)`);
    expect(res.get('ca-secret')!.line).toMatch(/^Secret meshlet-system\/meshlet-identity-ca: CA for trust domain check\.example, valid until \S+ \(36\dd left\)$/);
    expect(res.get('identity-endpoints')!.line).toBe('Service meshlet-system/meshlet-identity has 2 ready endpoints');
    expect(res.get('revocation-list')!.line).toBe('no ConfigMap meshlet-system/meshlet-revocations yet: nobody is revoked (Deployment meshlet-system/meshlet-identity watches it)');
    expect(res.get('injector-tls-secret')!.line).toMatch(/^Secret meshlet-system\/meshlet-injector-tls: certificate for meshlet-injector\.meshlet-system\.svc, valid until \S+ \(36\dd left\)$/);
    const created = requests.find((q) => q === 'POST /api/v1/namespaces');
    expect(created).toBeDefined();
    const ns = /namespaces\/(meshlet-check-[0-9a-f]{8})\/pods\?dryRun=All/.exec(requests.join('\n'))![1];
    expect(requests).toContain(`DELETE /api/v1/namespaces/${ns}`);
    expect(requests.filter((q) => q.startsWith('POST') || q.startsWith('DELETE') || q.startsWith('PUT') || q.startsWith('PATCH')).every((q) => q === 'POST /api/v1/namespaces' || q.includes('dryRun=All') || q === `DELETE /api/v1/namespaces/${ns}`)).toBe(true);
  });

  it('a missing Secret, an unverifiable caBundle, an unavailable Deployment: FAIL lines with their fix, exit 1', async () => {
    objects.delete('/api/v1/namespaces/meshlet-system/secrets/meshlet-identity-ca');
    const mwc = objects.get('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/meshlet-injector') as { webhooks: { clientConfig: { caBundle: string } }[] };
    mwc.webhooks[0]!.clientConfig.caBundle = Buffer.from(serverCa).toString('base64');
    const dep = objects.get('/apis/apps/v1/namespaces/meshlet-system/deployments/meshlet-injector') as { status: unknown };
    dep.status = { replicas: 2, conditions: [{ type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable' }] };
    injectorUp = false;
    const r = await run('check', '--kubeconfig', await kubeconfig('broken.yaml'));
    expect(r.code).toBe(1);
    const res = parseCheck(r.stdout);
    expect(res.get('ca-secret')).toEqual({
      status: 'FAIL',
      line: 'Secret meshlet-system/meshlet-identity-ca not found',
      fix: 'create it from your CA directory: meshlet install --ca-dir DIR | kubectl apply -f - (docs/install.md), or kubectl -n meshlet-system create secret generic meshlet-identity-ca --from-file=DIR/ (docs/deploy.md step 1); the identity service cannot start without it',
    });
    expect(res.get('mutating-webhook')!.status).toBe('FAIL');
    expect(res.get('mutating-webhook')!.line).toContain("webhook inject.meshlet.io's caBundle does not verify the serving certificate in Secret meshlet-system/meshlet-injector-tls");
    expect(res.get('validating-webhook')!.status).toBe('ok');
    expect(res.get('injector-deployment')).toMatchObject({ status: 'FAIL', line: 'Deployment meshlet-system/meshlet-injector: 0 of 2 replicas available (Available=False, MinimumReplicasUnavailable)' });
    expect(res.get('injection')!.line).toMatch(/^a dry-run pod in meshlet-check-[0-9a-f]{8} was refused: the API server could not call the injector: .*no endpoints available/);
    expect(res.get('injection')!.fix).toContain('the injector must be running and reachable');
    expect(res.get('policy-validation')!.status).toBe('FAIL');
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('12 checks: 7 ok, 5 failed');
  });

  it('revocation-list: a list the identity service would refuse, a missing key or no setting at all FAIL with the fix; a valid list is counted', async () => {
    const cmPath = '/api/v1/namespaces/meshlet-system/configmaps/meshlet-revocations';
    const listed = (text: string) => objects.set(cmPath, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'meshlet-revocations', namespace: 'meshlet-system' }, data: { 'revocations.json': text } });
    const revocationLine = async (file: string) => parseCheck((await run('check', '--kubeconfig', await kubeconfig(file))).stdout).get('revocation-list')!;
    const ids = ['spiffe://check.example/ns/shop/sa/orders', 'spiffe://check.example/ns/web/sa/frontend'];
    listed(formatRevocationList(ids.map((spiffeId) => ({ spiffeId, revokedAt: '2026-12-04T07:00:00Z' }))));
    expect(await revocationLine('rl-ok.yaml')).toEqual({ status: 'ok', line: 'ConfigMap meshlet-system/meshlet-revocations: 2 identities revoked (Deployment meshlet-system/meshlet-identity watches it)' });
    listed('{"apiVersion":"meshlet.io/v1alpha1","kind":"RevocationList","revoked":[{"spiffeId":"spiffe://check.example","revokedAt":"2026-12-04T07:00:00Z"}]}');
    const bad = await revocationLine('rl-bad.yaml');
    expect(bad.status).toBe('FAIL');
    expect(bad.line).toMatch(/^ConfigMap meshlet-system\/meshlet-revocations: revoked\[0\]\.spiffeId: .* — the identity service refuses it and keeps its last good list, and a replica that restarts will not start$/);
    expect(bad.fix).toBe('write a valid list: meshlet identity revoke|unrevoke SPIFFE_ID --list FILE --configmap meshlet-system | kubectl apply -f - (docs/revocation.md)');
    objects.set(cmPath, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'meshlet-revocations', namespace: 'meshlet-system' }, data: {} });
    expect(await revocationLine('rl-nokey.yaml')).toMatchObject({ status: 'FAIL', line: 'ConfigMap meshlet-system/meshlet-revocations has no key revocations.json: the identity service keeps the last list it had, and a replica that starts now revokes nobody' });
    objects.delete(cmPath);
    const dep = objects.get('/apis/apps/v1/namespaces/meshlet-system/deployments/meshlet-identity') as { spec: { template: { spec: { containers: { env: { name: string }[] }[] } } } };
    const container = dep.spec.template.spec.containers[0]!;
    container.env = container.env.map((e) => (e.name === 'MESHLET_IDENTITY_REVOCATION_LIST' ? { name: e.name, valueFrom: { configMapKeyRef: { name: 'settings', key: 'list' } } } : e));
    expect(await revocationLine('rl-valuefrom.yaml')).toEqual({ status: 'ok', line: 'Deployment meshlet-system/meshlet-identity takes MESHLET_IDENTITY_REVOCATION_LIST from valueFrom (not checked from here)' });
    container.env = container.env.filter((e) => e.name !== 'MESHLET_IDENTITY_REVOCATION_LIST');
    expect(await revocationLine('rl-unset.yaml')).toEqual({
      status: 'FAIL',
      line: 'Deployment meshlet-system/meshlet-identity has no MESHLET_IDENTITY_REVOCATION_LIST: revoking an identity would change nothing — the service keeps issuing to it and its meshlet-ca sidecars learn no list',
      fix: 'set MESHLET_IDENTITY_REVOCATION_LIST=configmap:meshlet-revocations on Deployment meshlet-system/meshlet-identity with the Role of deploy/identity/rbac.yaml, as deploy/ and meshlet install do (meshlet install --ca-dir DIR | kubectl apply -f - (docs/install.md); docs/revocation.md)',
    });
    objects.delete('/apis/apps/v1/namespaces/meshlet-system/deployments/meshlet-identity');
    expect(await revocationLine('rl-nodep.yaml')).toEqual({ status: 'skip', line: 'needs identity-deployment' });
  });

  it('--min-validity: a certificate expiring sooner fails', async () => {
    const r = await run('check', '--kubeconfig', await kubeconfig('validity.yaml'), '--min-validity', '400d');
    expect(r.code).toBe(1);
    const res = parseCheck(r.stdout);
    expect(res.get('ca-secret')!.line).toMatch(/ca\.crt expires at \S+ \(36\dd left, less than --min-validity 400d\)$/);
    expect(res.get('ca-secret')!.fix).toContain('rotate the mesh CA before it expires (docs/ca.md)');
    expect(res.get('injector-tls-secret')!.status).toBe('FAIL');
    expect(res.get('mutating-webhook')!.line).toMatch(/caBundle certificate expires at/);
  });

  it('a missing injector Secret skips the caBundle checks that need it', async () => {
    objects.delete('/api/v1/namespaces/meshlet-system/secrets/meshlet-injector-tls');
    const res = parseCheck((await run('check', '--kubeconfig', await kubeconfig('no-tls.yaml'))).stdout);
    expect(res.get('injector-tls-secret')!.status).toBe('FAIL');
    expect(res.get('mutating-webhook')).toEqual({ status: 'skip', line: 'MutatingWebhookConfiguration meshlet-injector found; its caBundle not verified: needs injector-tls-secret' });
  });

  it('--namespace must be opted in to injection', async () => {
    objects.set('/api/v1/namespaces/shop', { metadata: { name: 'shop', labels: {} } });
    const res = parseCheck((await run('check', '--kubeconfig', await kubeconfig('ns.yaml'), '--namespace', 'shop')).stdout);
    expect(res.get('injection')).toEqual({
      status: 'FAIL',
      line: 'namespace shop (--namespace) is not labelled meshlet.io/inject=enabled, so the webhook is never called for it',
      fix: 'kubectl label namespace shop meshlet.io/inject=enabled, or leave out --namespace to use a temporary one',
    });
    (objects.get('/api/v1/namespaces/shop') as { metadata: { labels: Record<string, string> } }).metadata.labels['meshlet.io/inject'] = 'enabled';
    const ok = await run('check', '--kubeconfig', await kubeconfig('ns.yaml'), '--namespace', 'shop');
    expect(ok.code).toBe(0);
    expect(parseCheck(ok.stdout).get('injection')!.line).toBe('a dry-run pod in namespace shop got meshlet-init and meshlet-proxy from the injector');
    expect(requests).not.toContain('POST /api/v1/namespaces');
  });

  it('an unreachable API server, refused credentials, a broken kubeconfig: the first check fails, the rest are skipped', async () => {
    const closed = await run('check', '--kubeconfig', await kubeconfig('closed.yaml', { token: TOKEN }, 'https://127.0.0.1:1'));
    expect(closed.code).toBe(1);
    const res = parseCheck(closed.stdout);
    expect(res.get('api-server')!.line).toMatch(/^https:\/\/127\.0\.0\.1:1 \(.*closed\.yaml\) not reachable: ECONNREFUSED/);
    expect(res.get('api-server')!.fix).toContain('`kubectl version` must work with the same settings');
    for (const name of CHECK_NAMES.slice(1)) expect(res.get(name), name).toEqual({ status: 'skip', line: 'needs api-server' });

    const refused = parseCheck((await run('check', '--kubeconfig', await kubeconfig('refused.yaml', { token: 'wrong' }))).stdout);
    expect(refused.get('api-server')!.line).toBe(`${url} refused the credentials of ${join(tmp, 'refused.yaml')} (HTTP 401)`);

    const noContext = await run('check', '--kubeconfig', await kubeconfig('ctx.yaml'), '--context', 'elsewhere');
    expect(noContext.code).toBe(1);
    expect(noContext.stderr).toBe('');
    expect(parseCheck(noContext.stdout).get('api-server')!.line).toBe(`KUBECONFIG_NO_CONTEXT: ${join(tmp, 'ctx.yaml')} has no context "elsewhere"`);
  });

  it('$KUBECONFIG is used when --kubeconfig is not given; an exec credential plugin supplies the token', async () => {
    const plugin = { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', `process.stdout.write(JSON.stringify({apiVersion:'client.authentication.k8s.io/v1',kind:'ExecCredential',status:{token:${JSON.stringify(TOKEN)}}}))`] } };
    const file = await kubeconfig('exec.yaml', plugin);
    const saved = process.env['KUBECONFIG'];
    process.env['KUBECONFIG'] = `${join(tmp, 'absent.yaml')}:${file}`;
    try {
      const r = await run('check');
      expect(r.code, r.stdout).toBe(0);
      expect(parseCheck(r.stdout).get('api-server')!.line).toContain(`(${file}, context standin)`);
    } finally {
      if (saved === undefined) delete process.env['KUBECONFIG'];
      else process.env['KUBECONFIG'] = saved;
    }
  });

  it('usage errors exit 2; --help lists every flag and check', async () => {
    const bad = await run('check', '--min-validity', 'soon');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('meshlet check: --min-validity "soon" is not a duration');
    expect((await run('check', 'extra')).code).toBe(2);
    const help = await run('check', '--help');
    expect(help.code).toBe(0);
    for (const flag of ['--kubeconfig', '--context', '--namespace', '--min-validity']) expect(help.stdout).toContain(flag);
    for (const name of CHECK_NAMES) expect(help.stdout).toContain(name);
    expect(help.stdout).toContain('(default 7d)');
  });
});
