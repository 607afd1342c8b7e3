// Issue 17: `meshlet install | kubectl apply -f -` on a real API server, and `meshlet check`
// against what it made. This control plane has no kubelet: the Deployments' Pods stay Pending,
// so the Deployments are never available and the identity Service has no endpoints — those
// checks fail here, with their fix. The webhook probes pass once a real injector runs on the
// host serving the Secret's kind of certificate (support.ts startHostInjector/deployWebhookOnHost).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { GENERATED_FILE, NPM_SCRIPT, renderedPart } from '../../scripts/generate-install-manifests.ts';
import { CLI, clusterSkip, DEPLOY, deployWebhookOnHost, startHostInjector, tempDir, useControlPlane, type HostInjector, type K8sObject } from './support.ts';

function meshlet(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** `meshlet check` output as name -> { status, line, fix }. */
function parseCheck(stdout: string): Map<string, { status: string; line: string; fix?: string }> {
  const out = new Map<string, { status: string; line: string; fix?: string }>();
  let last: { status: string; line: string; fix?: string } | undefined;
  for (const line of stdout.split('\n')) {
    const m = /^(ok|FAIL|skip)\s+(\S+)\s+(.*)$/.exec(line);
    if (m) {
      last = { status: m[1]!, line: m[3]! };
      out.set(m[2]!, last);
    } else if (/^\s+fix: /.test(line) && last) last.fix = line.trim().slice('fix: '.length);
  }
  return out;
}

const skip = clusterSkip();

describe.skipIf(skip)('meshlet install and meshlet check on a real API server', () => {
  const cluster = useControlPlane();
  let work: Awaited<ReturnType<typeof tempDir>>;
  let injector: HostInjector | undefined;
  const check = (...args: string[]) => meshlet(['check', '--kubeconfig', cluster().kubeconfig, ...args], { HOME: work.dir });

  beforeAll(async () => {
    work = await tempDir('meshlet-cluster-install-');
    const r = await meshlet(['ca', 'init', '--trust-domain', 'install.example', '--out', join(work.dir, 'ca')]);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    await injector?.stop();
    await work?.cleanup();
  });

  it('the committed src/control-plane/install/control-plane.yaml equals a fresh `kubectl kustomize deploy/`', async () => {
    const fresh = await cluster().kubectlOk(['kustomize', DEPLOY]);
    const committed = renderedPart(await readFile(GENERATED_FILE, 'utf8'));
    expect(committed, `src/control-plane/install/control-plane.yaml is stale: run \`${NPM_SCRIPT}\``).toBe(fresh);
  });

  it('meshlet install | kubectl apply -f - is accepted, every object stored', async () => {
    const cp = cluster();
    await cp.kubectlOk(['create', 'namespace', 'shop']);
    const r = await meshlet(['install', '--ca-dir', join(work.dir, 'ca'), '--namespace', 'shop', '--image', 'registry.example:5000/meshlet:9.9.9']);
    expect(r.code, r.stderr).toBe(0);
    const objects = parseAllDocuments(r.stdout, { version: '1.1' }).map((d) => d.toJS() as K8sObject).filter(Boolean);
    const out = await cp.kubectlOk(['apply', '-f', '-'], { input: r.stdout });
    for (const o of objects) expect(out).toMatch(new RegExp(`/${o.metadata.name} (created|configured|unchanged)`));
    for (const o of objects) {
      const got = await cp.kubectl(['get', o.kind.toLowerCase(), o.metadata.name, ...(o.metadata.namespace ? ['-n', o.metadata.namespace] : []), '-o', 'name']);
      expect(got.code, `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}: ${got.stderr}`).toBe(0);
    }
    // Server-side apply of the same stream is accepted too (field ownership, schema on the server).
    await cp.kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: r.stdout });
    const identity = JSON.parse(await cp.kubectlOk(['-n', 'meshlet-system', 'get', 'deployment', 'meshlet-identity', '-o', 'json'])) as { spec: { template: { spec: { containers: { image: string; env: { name: string; value: string }[] }[] } } } };
    expect(identity.spec.template.spec.containers[0]!.image).toBe('registry.example:5000/meshlet:9.9.9');
    expect(identity.spec.template.spec.containers[0]!.env.find((e) => e.name === 'MESHLET_TRUST_DOMAIN')?.value).toBe('install.example');
  });

  it('meshlet check: certificates and webhook configurations ok; the Deployments (no kubelet here) fail with what to do', async () => {
    const r = await check();
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toBe('');
    const res = parseCheck(r.stdout);
    for (const name of ['api-server', 'namespace', 'ca-secret', 'revocation-list', 'injector-tls-secret', 'mutating-webhook', 'validating-webhook']) {
      expect(res.get(name)?.status, `${name}: ${r.stdout}`).toBe('ok');
    }
    expect(res.get('ca-secret')!.line).toContain('CA for trust domain install.example');
    expect(res.get('mutating-webhook')!.line).toContain('caBundle verifies the serving certificate (calls service meshlet-system/meshlet-injector:443/mutate)');
    for (const name of ['identity-deployment', 'injector-deployment']) {
      const d = res.get(name)!;
      expect(d.status, r.stdout).toBe('FAIL');
      expect(d.line).toMatch(/: 0 of 2 replicas available \(/);
      expect(d.fix).toContain(`kubectl -n meshlet-system get pods -l app.kubernetes.io/name=meshlet-${name.split('-')[0]}`);
    }
    expect(res.get('identity-endpoints')).toMatchObject({ status: 'FAIL' });
    expect(res.get('identity-endpoints')!.line).toContain('has no ready endpoints');
    // No injector runs: the API server cannot call the webhooks (failurePolicy Fail).
    expect(res.get('injection')).toMatchObject({ status: 'FAIL' });
    expect(res.get('injection')!.line).toContain('could not call the injector');
    expect(res.get('policy-validation')).toMatchObject({ status: 'FAIL' });
    expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(/^12 checks: 7 ok, 5 failed$/);
    // The temporary namespace of the dry runs is deleted (or being deleted).
    const left = JSON.parse(await cluster().kubectlOk(['get', 'namespaces', '-o', 'json'])) as { items: K8sObject[] & { status?: { phase?: string } }[] };
    for (const ns of left.items.filter((n) => n.metadata.name.startsWith('meshlet-check-'))) expect((ns as { status?: { phase?: string } }).status?.phase).toBe('Terminating');
  });

  it('with a real injector serving the Secret\'s certificate (on the host), the webhook probes pass', async () => {
    const cp = cluster();
    injector = await startHostInjector(work.dir);
    const [cert, key] = await Promise.all([readFile(join(work.dir, 'injector-tls.crt'), 'utf8'), readFile(join(work.dir, 'injector-tls.key'), 'utf8')]);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await cp.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'meshlet-injector-tls', namespace: 'meshlet-system' }, data: { 'tls.crt': b64(cert), 'tls.key': b64(key), 'ca.crt': b64(injector.caPem) } }),
    });
    await deployWebhookOnHost(cp, 'MutatingWebhookConfiguration', injector.url, injector.caPem);
    await deployWebhookOnHost(cp, 'ValidatingWebhookConfiguration', injector.url, injector.caPem);
    // The host injector's certificate lives 23 h (support.ts): below the default --min-validity.
    const r = await check('--min-validity', '1h');
    const res = parseCheck(r.stdout);
    for (const name of ['injector-tls-secret', 'mutating-webhook', 'validating-webhook', 'injection', 'policy-validation']) {
      expect(res.get(name)?.status, `${name}: ${r.stdout}`).toBe('ok');
    }
    expect(res.get('injection')!.line).toMatch(/a dry-run pod in temporary namespace meshlet-check-[0-9a-f]{8} got meshlet-init and meshlet-proxy from the injector/);
    expect(res.get('policy-validation')!.line).toContain("refused by the injector's /validate");
    expect(r.code).toBe(1); // the Deployments still are not available

    // --namespace: an existing namespace must be opted in.
    const notOptedIn = parseCheck((await check('--namespace', 'shop', '--min-validity', '1h')).stdout).get('injection')!;
    expect(notOptedIn.status).toBe('FAIL');
    expect(notOptedIn.line).toBe('namespace shop (--namespace) is not labelled meshlet.io/inject=enabled, so the webhook is never called for it');
    await cp.kubectlOk(['label', 'namespace', 'shop', 'meshlet.io/inject=enabled']);
    expect(parseCheck((await check('--namespace', 'shop', '--min-validity', '1h')).stdout).get('injection')!.line).toContain('a dry-run pod in namespace shop got');
  });

  it('a broken install is reported: a caBundle that does not verify, the CA Secret deleted, an expiring certificate', async () => {
    const cp = cluster();
    const other = Buffer.from(cp.caPem).toString('base64');
    await cp.kubectlOk(['patch', 'mutatingwebhookconfiguration', 'meshlet-injector', '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: other }])]);
    await cp.kubectlOk(['-n', 'meshlet-system', 'delete', 'secret', 'meshlet-identity-ca']);
    const r = await check('--min-validity', '1h');
    expect(r.code).toBe(1);
    const res = parseCheck(r.stdout);
    expect(res.get('mutating-webhook')).toMatchObject({
      status: 'FAIL',
      line: "MutatingWebhookConfiguration meshlet-injector: webhook inject.meshlet.io's caBundle does not verify the serving certificate in Secret meshlet-system/meshlet-injector-tls: every call to the injector fails TLS",
    });
    expect(res.get('mutating-webhook')!.fix).toContain('meshlet install --ca-dir DIR | kubectl apply -f -');
    expect(res.get('validating-webhook')!.status).toBe('ok');
    expect(res.get('injection')!.status).toBe('FAIL');
    expect(res.get('injection')!.line).toMatch(/could not call the injector: .*(x509|certificate)/);
    expect(res.get('ca-secret')).toMatchObject({ status: 'FAIL', line: 'Secret meshlet-system/meshlet-identity-ca not found' });
    expect(res.get('ca-secret')!.fix).toContain('kubectl -n meshlet-system create secret generic meshlet-identity-ca --from-file=DIR/');

    // The host injector's certificate lives 23 h: the default --min-validity (7d) fails it, and the CA
    // of the validating webhook's caBundle too (it is checked even when the certificate expires soon).
    const soon = parseCheck((await check()).stdout);
    expect(soon.get('injector-tls-secret')!.status).toBe('FAIL');
    expect(soon.get('injector-tls-secret')!.line).toMatch(/tls\.crt expires at \S+ \(2\dh left, less than --min-validity 7d\)$/);
    expect(soon.get('validating-webhook')!.status).toBe('FAIL');
    expect(soon.get('validating-webhook')!.line).toMatch(/caBundle certificate expires at \S+ \(2\dh left, less than --min-validity 7d\)$/);
  });
});
