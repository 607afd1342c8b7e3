import { createPrivateKey, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { formatDuration } from '../../common/config/duration.ts';
import { ANNOTATIONS } from '../injector/patch/annotations.ts';
import { INIT_CONTAINER, PROXY_CONTAINER } from '../injector/patch/pod-layout.ts';
import type { KubeClient } from './kube-client.ts';
import { NAMES } from './manifests.ts';
import { revocationConfigMapRef } from '../identity-service/revocation-configmap.ts';
import { parseRevocationList } from '../../data-plane/identity/revocation/revocation-list.ts';
import { REVOCATION_CONFIGMAP_KEY, REVOCATION_CONFIGMAP_NAME } from '../../data-plane/identity/revocation/revocation-list-edit.ts';

const REVOCATION_ENV = 'MESHLET_IDENTITY_REVOCATION_LIST';

/**
 * `meshlet check`: what a running installation needs, one check at a time, each failure with
 * what to do. The checks only read, except the two webhook probes, which are server-side
 * dry-run creates (`?dryRun=All`: admission runs for real, nothing is stored) in a namespace
 * opted in to injection — `--namespace`, or a temporary one this creates and deletes.
 * docs/install.md lists every check, its message and its fix.
 */

export type CheckStatus = 'ok' | 'FAIL' | 'skip';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  message: string;
  /** What to do, for a failure. */
  fix?: string;
}

export interface CheckOptions {
  /** A certificate expiring sooner than this fails. */
  minValidityMs: number;
  /** An existing namespace labelled meshlet.io/inject=enabled for the dry runs; else a temporary one. */
  namespace?: string;
  now?: () => Date;
  /** How long to wait for a temporary namespace's ServiceAccount "default". */
  serviceAccountWaitMs?: number;
}

/** Every check's name, in the order they run and print. */
export const CHECK_NAMES = [
  'api-server',
  'namespace',
  'ca-secret',
  'identity-deployment',
  'identity-endpoints',
  'revocation-list',
  'injector-tls-secret',
  'mutating-webhook',
  'validating-webhook',
  'injector-deployment',
  'injection',
  'policy-validation',
] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

export const DEFAULT_MIN_VALIDITY_MS = 7 * 24 * 3600 * 1000;

const NS = NAMES.namespace;
const INJECT_LABEL = ANNOTATIONS.inject;
const REINSTALL = 'meshlet install --ca-dir DIR | kubectl apply -f - (docs/install.md)';

class Failure extends Error {
  readonly fix: string;
  constructor(message: string, fix: string) {
    super(message);
    this.fix = fix;
  }
}

class Skip extends Error {
  readonly needs: CheckName;
  constructor(message: string, needs: CheckName) {
    super(message);
    this.needs = needs;
  }
}

type Obj = { metadata?: { name?: string; labels?: Record<string, string> }; [k: string]: unknown };

function apiMessage(body: unknown): string {
  if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
  return typeof body === 'string' ? body.trim().slice(0, 300) : '';
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();

function pemCerts(pem: string, what: string, fix: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Failure(`${what} holds no PEM certificate`, fix);
  try {
    return blocks.map((b) => new X509Certificate(b));
  } catch (err) {
    throw new Failure(`${what} is not a valid certificate (${(err as Error).message})`, fix);
  }
}

function keyMatches(keyPem: string, cert: X509Certificate): boolean {
  try {
    return createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }).equals(cert.publicKey.export({ type: 'spki', format: 'der' }));
  } catch {
    return false;
  }
}

function dnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '').split(/,\s*/).filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4));
}

function uriNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '').split(/,\s*/).filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
}

function describeLeft(ms: number): string {
  if (ms <= 0) return 'expired';
  const days = Math.floor(ms / 86_400_000);
  return days >= 1 ? `${days}d left` : `${Math.floor(ms / 3_600_000)}h left`;
}

function decodeSecret(secret: Obj, key: string, what: string, fix: string): string {
  const v = (secret['data'] as Record<string, string> | undefined)?.[key];
  if (!v) throw new Failure(`${what} has no ${key}`, fix);
  return Buffer.from(v, 'base64').toString('utf8');
}

export async function runChecks(client: KubeClient, opts: CheckOptions, report: (r: CheckResult) => void = () => {}): Promise<CheckResult[]> {
  const now = opts.now ?? (() => new Date());
  const results: CheckResult[] = [];
  /** A check that did not pass -> the failed check at the root of it. */
  const failed = new Map<CheckName, CheckName>();
  /** The injector's serving certificate, when its Secret could be read. */
  let servingCert: X509Certificate | undefined;

  const get = async (path: string, what: string, missingFix: string): Promise<Obj> => {
    const r = await client.request('GET', path);
    if (r.status === 200) return r.body as Obj;
    if (r.status === 404) throw new Failure(`${what} not found`, missingFix);
    if (r.status === 401 || r.status === 403) {
      throw new Failure(`not allowed to read ${what} (HTTP ${r.status}: ${oneLine(apiMessage(r.body))})`, 'run meshlet check with credentials that may read the meshlet-system namespace and the webhook configurations, and create namespaces and dry-run pods (e.g. a cluster admin)');
    }
    throw new Failure(`reading ${what}: HTTP ${r.status} ${oneLine(apiMessage(r.body))}`, 'retry; if it persists, look at the API server\'s health (kubectl get --raw /readyz)');
  };

  const run = async (name: CheckName, needs: readonly CheckName[], fn: () => Promise<string>): Promise<void> => {
    let result: CheckResult;
    // A check skipped because another was names the failure at the root of it.
    const blocked = [...new Set(needs.filter((n) => failed.has(n)).map((n) => failed.get(n)!))];
    if (blocked.length > 0) {
      result = { name, status: 'skip', message: `needs ${blocked.join(', ')}` };
      failed.set(name, blocked[0]!);
    } else {
      try {
        result = { name, status: 'ok', message: await fn() };
      } catch (err) {
        if (err instanceof Skip) {
          result = { name, status: 'skip', message: err.message };
          failed.set(name, failed.get(err.needs) ?? err.needs);
        }
        else if (err instanceof Failure) result = { name, status: 'FAIL', message: err.message, fix: err.fix };
        else result = { name, status: 'FAIL', message: `${(err as Error)?.message ?? String(err)}`, fix: 'retry; if it persists, report it with this message' };
      }
    }
    if (result.status !== 'ok' && !failed.has(name)) failed.set(name, name);
    results.push(result);
    report(result);
  };

  const minValidity = formatDuration(opts.minValidityMs);
  const validityFailure = (cert: X509Certificate, what: string, fix: string): void => {
    const t = now().getTime();
    if (cert.validFromDate.getTime() > t) throw new Failure(`${what} is not valid before ${cert.validFromDate.toISOString()} (check the clocks)`, fix);
    const left = cert.validToDate.getTime() - t;
    if (left < opts.minValidityMs) throw new Failure(`${what} ${left <= 0 ? 'expired' : 'expires'} at ${cert.validToDate.toISOString()} (${describeLeft(left)}, less than --min-validity ${minValidity})`, fix);
  };

  // 1. The API server.
  await run('api-server', [], async () => {
    let r;
    try {
      r = await client.request('GET', '/version');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new Failure(`${client.target.server} (${client.target.source}) not reachable: ${e.code ? `${e.code} ` : ''}${oneLine(e.message)}`, 'check which cluster you meant: --kubeconfig FILE, $KUBECONFIG, ~/.kube/config, --context NAME; `kubectl version` must work with the same settings');
    }
    if (r.status === 401) throw new Failure(`${client.target.server} refused the credentials of ${client.target.source} (HTTP 401)`, 'renew the credentials (token or client certificate) of the kubeconfig user, or choose another --context');
    if (r.status !== 200) throw new Failure(`${client.target.server} answered /version with HTTP ${r.status} ${oneLine(apiMessage(r.body))}`, 'check the kubeconfig and that `kubectl version` works');
    const v = (r.body as { gitVersion?: string }).gitVersion ?? 'unknown version';
    return `${client.target.server} answers, Kubernetes ${v} (${client.target.source}${client.target.context ? `, context ${client.target.context}` : ''})`;
  });

  // 2. The namespace.
  await run('namespace', ['api-server'], async () => {
    await get(`/api/v1/namespaces/${NS}`, `namespace ${NS}`, `install meshlet: ${REINSTALL}`);
    return `namespace ${NS} exists`;
  });

  // 3. The mesh CA Secret.
  await run('ca-secret', ['namespace'], async () => {
    const what = `Secret ${NS}/${NAMES.caSecret}`;
    const fix = `create it from your CA directory: ${REINSTALL}, or kubectl -n ${NS} create secret generic ${NAMES.caSecret} --from-file=DIR/ (docs/deploy.md step 1); the identity service cannot start without it`;
    const secret = await get(`/api/v1/namespaces/${NS}/secrets/${NAMES.caSecret}`, what, fix);
    const certPem = decodeSecret(secret, 'ca.crt', what, fix);
    const keyPem = decodeSecret(secret, 'ca.key', what, fix);
    const [cert] = pemCerts(certPem, `${what} ca.crt`, fix) as [X509Certificate];
    if (!cert.ca) throw new Failure(`${what} ca.crt is not a CA certificate (basicConstraints CA:true is missing)`, fix);
    if (!keyMatches(keyPem, cert)) throw new Failure(`${what} ca.key does not belong to its ca.crt`, fix);
    const rotate = `rotate the mesh CA before it expires (docs/ca.md), then ${REINSTALL} with the new CA directory`;
    validityFailure(cert, `${what} ca.crt`, rotate);
    const others = [
      ...(secret['data'] && (secret['data'] as Record<string, string>)['chain.crt'] ? pemCerts(decodeSecret(secret, 'chain.crt', what, fix), `${what} chain.crt`, fix).slice(1) : []),
      ...((secret['data'] as Record<string, string>)['bundle.crt'] ? pemCerts(decodeSecret(secret, 'bundle.crt', what, fix), `${what} bundle.crt`, fix) : []),
    ];
    for (const c of others) validityFailure(c, `${what}: the CA ${c.subject.replace(/\n/g, ', ')} of its chain/bundle`, rotate);
    const td = uriNames(cert).find((u) => u.startsWith('spiffe://'))?.slice('spiffe://'.length) ?? '(no spiffe:// SAN)';
    return `${what}: CA for trust domain ${td}, valid until ${cert.validToDate.toISOString()} (${describeLeft(cert.validToDate.getTime() - now().getTime())})`;
  });

  const deploymentCheck = async (name: string, extraFix: string): Promise<string> => {
    const what = `Deployment ${NS}/${name}`;
    const d = await get(`/apis/apps/v1/namespaces/${NS}/deployments/${name}`, what, `install meshlet: ${REINSTALL}`);
    const spec = (d['spec'] as { replicas?: number } | undefined) ?? {};
    const status = (d['status'] as { availableReplicas?: number; conditions?: { type: string; status: string; reason?: string; message?: string }[] } | undefined) ?? {};
    const want = spec.replicas ?? 1;
    const available = status.availableReplicas ?? 0;
    const cond = status.conditions?.find((c) => c.type === 'Available');
    if (cond?.status === 'True' && available > 0) return `${what}: ${available} of ${want} replicas available`;
    const why = cond ? `Available=${cond.status}${cond.reason ? `, ${cond.reason}` : ''}` : 'no Available condition yet';
    throw new Failure(
      `${what}: ${available} of ${want} replicas available (${why})`,
      `see why its pods do not run: kubectl -n ${NS} get pods -l app.kubernetes.io/name=${name}; kubectl -n ${NS} describe deploy/${name}; kubectl -n ${NS} logs deploy/${name}${extraFix}`,
    );
  };

  // 4. The identity service: its Deployment, and its Service's ready endpoints.
  await run('identity-deployment', ['namespace'], () => deploymentCheck(NAMES.identityDeployment, ` (a missing or unreadable Secret ${NAMES.caSecret} keeps it from starting)`));
  await run('identity-endpoints', ['namespace'], async () => {
    const svc = `Service ${NS}/${NAMES.identityService}`;
    await get(`/api/v1/namespaces/${NS}/services/${NAMES.identityService}`, svc, `install meshlet: ${REINSTALL}`);
    const slices = await get(
      `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${NAMES.identityService}`)}`,
      `the EndpointSlices of ${svc}`,
      '',
    );
    const endpoints = ((slices['items'] as { endpoints?: { conditions?: { ready?: boolean } }[] }[] | undefined) ?? []).flatMap((s) => s.endpoints ?? []);
    const ready = endpoints.filter((e) => e.conditions?.ready !== false).length;
    if (ready === 0) {
      throw new Failure(
        `${svc} has no ready endpoints (${endpoints.length} not ready): sidecars cannot get certificates`,
        `make the identity pods ready (see identity-deployment); kubectl -n ${NS} get endpointslices -l kubernetes.io/service-name=${NAMES.identityService}`,
      );
    }
    return `${svc} has ${ready} ready endpoint${ready === 1 ? '' : 's'}`;
  });

  // The identity service's revocation list (docs/revocation.md): configured, and — when it is a
  // ConfigMap — a list the service accepts. A list it refuses is kept out (the last good one
  // stays), and a restarting replica refuses to start on it: worth a FAIL before that happens.
  await run('revocation-list', ['namespace'], async () => {
    const what = `Deployment ${NS}/${NAMES.identityDeployment}`;
    const path = `/apis/apps/v1/namespaces/${NS}/deployments/${NAMES.identityDeployment}`;
    const deployment = await client.request('GET', path);
    if (deployment.status === 404) throw new Skip('needs identity-deployment', 'identity-deployment');
    // Another refusal is reported as get() words it.
    const d = deployment.status === 200 ? (deployment.body as Obj) : await get(path, what, `install meshlet: ${REINSTALL}`);
    const containers = ((d['spec'] as { template?: { spec?: { containers?: { name?: string; env?: { name: string; value?: string }[] }[] } } } | undefined)?.template?.spec?.containers) ?? [];
    const entry = containers.flatMap((c) => (c.env ?? []) as { name: string; value?: string; valueFrom?: unknown }[]).find((e) => e.name === REVOCATION_ENV);
    if (entry?.valueFrom !== undefined) return `${what} takes ${REVOCATION_ENV} from valueFrom (not checked from here)`;
    const setting = entry?.value ?? '';
    const configFix = `set ${REVOCATION_ENV}=configmap:${REVOCATION_CONFIGMAP_NAME} on ${what} with the Role of deploy/identity/rbac.yaml, as deploy/ and meshlet install do (${REINSTALL}; docs/revocation.md)`;
    if (setting === '') throw new Failure(`${what} has no ${REVOCATION_ENV}: revoking an identity would change nothing — the service keeps issuing to it and its meshlet-ca sidecars learn no list`, configFix);
    const ref = revocationConfigMapRef(setting);
    if (ref === null) return `${what} reads its revocation list from the file ${setting} in its pod (not checked from here)`;
    const namespace = ref.namespace ?? NS;
    const cmWhat = `ConfigMap ${namespace}/${ref.name}`;
    const listFix = `write a valid list: meshlet identity revoke|unrevoke SPIFFE_ID --list FILE --configmap ${namespace} | kubectl apply -f - (docs/revocation.md)`;
    const cmPath = `/api/v1/namespaces/${namespace}/configmaps/${ref.name}`;
    const cm = await client.request('GET', cmPath);
    if (cm.status === 404) return `no ${cmWhat} yet: nobody is revoked (${what} watches it)`;
    const configMap = cm.status === 200 ? (cm.body as Obj) : await get(cmPath, cmWhat, listFix);
    const text = (configMap['data'] as Record<string, unknown> | undefined)?.[REVOCATION_CONFIGMAP_KEY];
    if (typeof text !== 'string') throw new Failure(`${cmWhat} has no key ${REVOCATION_CONFIGMAP_KEY}: the identity service keeps the last list it had, and a replica that starts now revokes nobody`, listFix);
    let revoked: number;
    try {
      revoked = parseRevocationList(text).size;
    } catch (err) {
      throw new Failure(`${cmWhat}: ${oneLine((err as Error).message)} — the identity service refuses it and keeps its last good list, and a replica that restarts will not start`, listFix);
    }
    return `${cmWhat}: ${revoked} ${revoked === 1 ? 'identity' : 'identities'} revoked (${what} watches it)`;
  });

  // 5. The injector's serving certificate.
  const tlsFix = `renew it: ${REINSTALL}, then kubectl -n ${NS} rollout restart deploy/${NAMES.injectorDeployment} (or install with deploy-cert-manager/, which renews it)`;
  const serviceName = `${NAMES.injectorService}.${NS}.svc`;
  await run('injector-tls-secret', ['namespace'], async () => {
    const what = `Secret ${NS}/${NAMES.injectorTlsSecret}`;
    const fix = `create it: ${REINSTALL} (or docs/deploy.md step 2), then kubectl -n ${NS} rollout restart deploy/${NAMES.injectorDeployment}`;
    const secret = await get(`/api/v1/namespaces/${NS}/secrets/${NAMES.injectorTlsSecret}`, what, fix);
    const [leaf] = pemCerts(decodeSecret(secret, 'tls.crt', what, fix), `${what} tls.crt`, fix) as [X509Certificate];
    if (!keyMatches(decodeSecret(secret, 'tls.key', what, fix), leaf)) throw new Failure(`${what} tls.key does not belong to its tls.crt`, fix);
    if (!dnsNames(leaf).includes(serviceName)) {
      throw new Failure(`${what} tls.crt has no DNS name ${serviceName} (it has ${dnsNames(leaf).join(', ') || 'none'}): the API server refuses it`, fix);
    }
    // The webhook checks verify the caBundle against it even when it is about to expire.
    servingCert = leaf;
    validityFailure(leaf, `${what} tls.crt`, tlsFix);
    return `${what}: certificate for ${serviceName}, valid until ${leaf.validToDate.toISOString()} (${describeLeft(leaf.validToDate.getTime() - now().getTime())})`;
  });

  // 6. Both webhook configurations: present, and a caBundle that verifies the serving certificate.
  const webhookCheck = async (kind: 'mutatingwebhookconfigurations' | 'validatingwebhookconfigurations', name: string): Promise<string> => {
    const what = `${kind === 'mutatingwebhookconfigurations' ? 'MutatingWebhookConfiguration' : 'ValidatingWebhookConfiguration'} ${name}`;
    const cfg = await get(`/apis/admissionregistration.k8s.io/v1/${kind}/${name}`, what, `install meshlet: ${REINSTALL}`);
    const hooks = (cfg['webhooks'] as { name: string; clientConfig?: { caBundle?: string; url?: string; service?: { name: string; namespace: string; port?: number; path?: string } } }[] | undefined) ?? [];
    if (hooks.length === 0) throw new Failure(`${what} has no webhooks`, `re-apply it: ${REINSTALL}`);
    if (!servingCert) throw new Skip(`${what} found; its caBundle not verified: needs injector-tls-secret`, 'injector-tls-secret');
    const targets: string[] = [];
    for (const w of hooks) {
      const cc = w.clientConfig ?? {};
      targets.push(cc.url ?? `service ${cc.service?.namespace}/${cc.service?.name}:${cc.service?.port ?? 443}${cc.service?.path ?? ''}`);
      if (!cc.caBundle) throw new Failure(`${what}: webhook ${w.name} has no caBundle, so the API server cannot verify the injector`, tlsFix);
      const roots = pemCerts(Buffer.from(cc.caBundle, 'base64').toString('utf8'), `${what}: webhook ${w.name}'s caBundle`, tlsFix);
      const signer = roots.find((ca) => servingCert!.checkIssued(ca) && servingCert!.verify(ca.publicKey));
      if (!signer) {
        throw new Failure(`${what}: webhook ${w.name}'s caBundle does not verify the serving certificate in Secret ${NS}/${NAMES.injectorTlsSecret}: every call to the injector fails TLS`, tlsFix);
      }
      validityFailure(signer, `${what}: webhook ${w.name}'s caBundle certificate`, tlsFix);
    }
    return `${what}: caBundle verifies the serving certificate (calls ${[...new Set(targets)].join(', ')})`;
  };
  await run('mutating-webhook', ['api-server'], () => webhookCheck('mutatingwebhookconfigurations', NAMES.mutatingWebhook));
  await run('validating-webhook', ['api-server'], () => webhookCheck('validatingwebhookconfigurations', NAMES.validatingWebhook));
  await run('injector-deployment', ['namespace'], () => deploymentCheck(NAMES.injectorDeployment, ''));

  // 7. The webhooks, called for real by the API server: dry-run creates in an opted-in namespace.
  let probeNs: string | undefined;
  let temporary = false;
  const probeNamespace = async (): Promise<string> => {
    if (probeNs) return probeNs;
    if (opts.namespace) {
      const ns = await get(`/api/v1/namespaces/${opts.namespace}`, `namespace ${opts.namespace} (--namespace)`, 'give an existing namespace, or leave out --namespace to use a temporary one');
      if (ns.metadata?.labels?.[INJECT_LABEL] !== 'enabled') {
        throw new Failure(`namespace ${opts.namespace} (--namespace) is not labelled ${INJECT_LABEL}=enabled, so the webhook is never called for it`, `kubectl label namespace ${opts.namespace} ${INJECT_LABEL}=enabled, or leave out --namespace to use a temporary one`);
      }
      return (probeNs = opts.namespace);
    }
    const name = `meshlet-check-${randomBytes(4).toString('hex')}`;
    const r = await client.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { [INJECT_LABEL]: 'enabled', 'app.kubernetes.io/managed-by': 'meshlet-check' } } });
    if (r.status !== 201) {
      throw new Failure(`cannot create the temporary namespace ${name}: HTTP ${r.status} ${oneLine(apiMessage(r.body))}`, `run as a user who may create namespaces, or pass --namespace NS (an existing namespace labelled ${INJECT_LABEL}=enabled)`);
    }
    temporary = true;
    probeNs = name;
    // The ServiceAccount admission plugin refuses pods until the controller made "default".
    const deadline = Date.now() + (opts.serviceAccountWaitMs ?? 30_000);
    for (;;) {
      if ((await client.request('GET', `/api/v1/namespaces/${name}/serviceaccounts/default`)).status === 200) break;
      if (Date.now() > deadline) throw new Failure(`the temporary namespace ${name} got no ServiceAccount "default" (is kube-controller-manager running?)`, `pass --namespace NS (an existing namespace labelled ${INJECT_LABEL}=enabled)`);
      await new Promise((r) => setTimeout(r, 250));
    }
    return name;
  };

  try {
    await run('injection', ['api-server'], async () => {
      const ns = await probeNamespace();
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'meshlet-check-', namespace: ns, labels: { 'app.kubernetes.io/name': 'meshlet-check' } },
        spec: { containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.10', ports: [{ containerPort: 8080 }] }] },
      };
      const r = await client.request('POST', `/api/v1/namespaces/${ns}/pods?dryRun=All`, pod);
      const msg = oneLine(apiMessage(r.body));
      if (r.status !== 200 && r.status !== 201) {
        if (/failed calling webhook/.test(msg)) {
          throw new Failure(
            `a dry-run pod in ${ns} was refused: the API server could not call the injector: ${msg}`,
            `the injector must be running and reachable (see injector-deployment; kubectl -n ${NS} get endpointslices -l kubernetes.io/service-name=${NAMES.injectorService}); an x509/certificate error means the caBundle and the serving certificate disagree (see mutating-webhook)`,
          );
        }
        throw new Failure(`a dry-run pod in ${ns} was refused: HTTP ${r.status} ${msg}`, `read the message: a Pod Security refusal means ${ns} must allow the init container's NET_ADMIN/NET_RAW (docs/injector.md); a webhook denial names its reason`);
      }
      const created = r.body as { metadata?: { annotations?: Record<string, string> }; spec?: { containers?: { name: string }[]; initContainers?: { name: string }[] } };
      const names = [...(created.spec?.initContainers ?? []), ...(created.spec?.containers ?? [])].map((c) => c.name);
      if (!names.includes(PROXY_CONTAINER) || created.metadata?.annotations?.[ANNOTATIONS.status] === undefined) {
        throw new Failure(
          `a dry-run pod in ${ns} (labelled ${INJECT_LABEL}=enabled) came back without the ${PROXY_CONTAINER} sidecar: the mutating webhook was not called`,
          `its namespaceSelector must select namespaces labelled ${INJECT_LABEL}=enabled: kubectl get mutatingwebhookconfiguration ${NAMES.mutatingWebhook} -o yaml; re-apply it with ${REINSTALL}`,
        );
      }
      return `a dry-run pod in ${temporary ? `temporary namespace ${ns}` : `namespace ${ns}`} got ${names.filter((n) => n === PROXY_CONTAINER || n === INIT_CONTAINER).join(' and ')} from the injector`;
    });

    await run('policy-validation', ['api-server'], async () => {
      const ns = await probeNamespace();
      const cm = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { generateName: 'meshlet-check-', namespace: ns, labels: { 'meshlet.io/policy': 'true' } },
        data: { 'not-a-policy.txt': 'meshlet check: a policy ConfigMap with no policy, which /validate must refuse' },
      };
      const r = await client.request('POST', `/api/v1/namespaces/${ns}/configmaps?dryRun=All`, cm);
      const msg = oneLine(apiMessage(r.body));
      if (r.status === 200 || r.status === 201) {
        throw new Failure(
          `an invalid policy ConfigMap (dry run, in ${ns}) was accepted: the validating webhook was not called`,
          `its objectSelector must select ConfigMaps labelled meshlet.io/policy=true: kubectl get validatingwebhookconfiguration ${NAMES.validatingWebhook} -o yaml; re-apply it with ${REINSTALL}`,
        );
      }
      if (/denied the request/.test(msg)) return `an invalid policy ConfigMap (dry run) was refused by the injector's /validate`;
      if (/failed calling webhook/.test(msg)) {
        throw new Failure(
          `the API server could not call the injector's /validate: ${msg}`,
          `the injector must be running and reachable (see injector-deployment); an x509/certificate error means the caBundle and the serving certificate disagree (see validating-webhook)`,
        );
      }
      throw new Failure(`a dry-run policy ConfigMap in ${ns}: HTTP ${r.status} ${msg}`, 'read the message above');
    });
  } finally {
    if (temporary && probeNs) await client.request('DELETE', `/api/v1/namespaces/${probeNs}`).catch(() => undefined);
  }
  return results;
}

/** The printed form of a result: `ok    name  message`, and for a failure a `fix:` line under it. */
export function formatResult(r: CheckResult): string {
  const width = Math.max(...CHECK_NAMES.map((n) => n.length));
  const line = `${r.status.padEnd(4)}  ${r.name.padEnd(width)}  ${r.message}`;
  return r.fix ? `${line}\n${' '.repeat(6 + width + 2)}fix: ${r.fix}` : line;
}

export function summary(results: readonly CheckResult[]): string {
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  const skipped = count('skip');
  return `${results.length} checks: ${count('ok')} ok, ${count('FAIL')} failed${skipped ? `, ${skipped} skipped` : ''}`;
}
