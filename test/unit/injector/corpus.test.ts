// Issue 14, "Done means": the injector against real, public manifests
// (test/fixtures/injector/corpus/, sources and commits in SOURCES.md). Every workload of every
// corpus file is injected exactly as `meshlet inject` does it (injectManifest, the function the
// command calls), then checked: schema-valid, idempotent, skipped where it must be, and every
// runtime expectation that can be read from the manifest, one named check each.
//
// A check that fails because meshlet cannot handle the workload yet is NOT weakened: the exact
// violation goes into KNOWN_GAPS with its reason and the issue item it belongs to, and the test
// asserts the violation is still there. When a gap closes the test fails: move the entry out.
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ReplicaSet } from 'kubernetes-models/apps/v1/ReplicaSet';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { injectManifest } from '../../../src/control-plane/injector/workloads.ts';
import { DEFAULT_INJECTION_SETTINGS, injectPod, type Pod } from '../../../src/control-plane/injector/patch/index.ts';
import { PROBE_KINDS, type Container, type Probe } from '../../../src/control-plane/injector/patch/pod-shape.ts';
import { readSidecarConfig, type SidecarConfig } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { protocolFromServicePort, type PortProtocolDecision } from '../../../src/data-plane/proxy/detect/port-protocol.ts';
import { runCli } from './cli-support.ts';
import { INJECTOR_FIXTURES } from './golden-support.ts';

const CORPUS = join(INJECTOR_FIXTURES, 'corpus');
const SETTINGS = DEFAULT_INJECTION_SETTINGS;
/** What `meshlet inject` assumes for a manifest without metadata.namespace (its --namespace default). */
const DEFAULT_NAMESPACE = 'default';
const ADMIN_PORT = 15020;
const PROXY_UID = 2020;

type Obj = Record<string, any>;

// ---------------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------------

/** Where each kind keeps its pod template, and the kubernetes-models class that validates it. */
const KINDS: Record<string, { path: string[]; model: new (data: never) => { validate(): void } }> = {
  'v1/Pod': { path: [], model: PodModel },
  'apps/v1/Deployment': { path: ['spec', 'template'], model: Deployment },
  'apps/v1/StatefulSet': { path: ['spec', 'template'], model: StatefulSet },
  'apps/v1/DaemonSet': { path: ['spec', 'template'], model: DaemonSet },
  'apps/v1/ReplicaSet': { path: ['spec', 'template'], model: ReplicaSet },
  'batch/v1/Job': { path: ['spec', 'template'], model: Job },
  'batch/v1/CronJob': { path: ['spec', 'jobTemplate', 'spec', 'template'], model: CronJob },
};
const WORKLOAD_KINDS = new Set(['Pod', 'Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob']);

interface Workload {
  /** `<file>:<Kind>/<name>`, the key of every table below. */
  id: string;
  file: string;
  doc: Obj;
  path: string[];
  model: new (data: never) => { validate(): void };
  template: Pod;
  namespace: string;
  /** Every document of the same file: Services, webhook configurations, RBAC. */
  siblings: Obj[];
}

const corpusFiles = readdirSync(CORPUS)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

function loadDocs(file: string): Obj[] {
  return parseAllDocuments(readFileSync(join(CORPUS, file), 'utf8'))
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
      return d.toJS() as Obj | null;
    })
    .filter((d): d is Obj => d !== null && typeof d === 'object');
}

const at = (o: Obj, path: string[]): any => path.reduce((x, k) => x?.[k], o);

const workloads: Workload[] = corpusFiles.flatMap((file) => {
  const docs = loadDocs(file);
  return docs
    .filter((d) => WORKLOAD_KINDS.has(d.kind))
    .map((doc) => {
      const kind = KINDS[`${doc.apiVersion}/${doc.kind}`];
      if (!kind) throw new Error(`${file}: ${doc.apiVersion} ${doc.kind} has no schema here`);
      return {
        id: `${file}:${doc.kind}/${doc.metadata.name}`,
        file,
        doc,
        path: kind.path,
        model: kind.model,
        template: at(doc, kind.path) as Pod,
        namespace: doc.metadata.namespace || DEFAULT_NAMESPACE,
        siblings: docs,
      };
    });
});

// ---------------------------------------------------------------------------------------------
// Expectations that are the same for every run: skips, and the warnings the injector gives
// ---------------------------------------------------------------------------------------------

/** Workloads the injector must leave alone, and why. Every other workload is injected. */
const EXPECTED_SKIPS: Record<string, string> = {
  // hostNetwork: iptables in the node's network namespace would intercept the whole node.
  'kube-prometheus-node-exporter.yaml:DaemonSet/node-exporter': 'host-network',
};

/**
 * The injector's warnings per workload (webhook `warnings`, `meshlet inject` stderr), exactly:
 * a change in what it warns about shows up here. Absent: no warning.
 */
const EXPECTED_WARNINGS: Record<string, string[]> = {
  'kube-prometheus-node-exporter.yaml:DaemonSet/node-exporter': ['meshlet: not injected: hostNetwork pods share the node network namespace and are never injected'],
};

// ---------------------------------------------------------------------------------------------
// Known gaps: expectations meshlet does not meet yet, asserted to still fail
// ---------------------------------------------------------------------------------------------

type CheckName =
  | 'probes-reach-app'
  | 'undeclared-probe-ports'
  | 'declared-ports-fronted'
  | 'service-target-ports'
  | 'port-protocol'
  | 'callers-outside-mesh'
  | 'outbound-declared'
  | 'metrics-scrape'
  | 'security-context'
  | 'resources'
  | 'job-completes';

/** Why a gap exists and the issue item that closes it. */
const GAP_KINDS = {
  'protocol-only-on-service': {
    reason:
      'the port is TLS or opaque TCP by its Service (name or appProtocol, Istio conventions); the container port is unnamed and not a well-known one, and the injector sees only the pod, so the sidecar parses HTTP and the connection fails',
    item: 'issue 14 item 3 (discovery answers with the Service port\'s protocol; the sidecar client is not written yet) or item 2 on the inbound side (detection is wired outbound only); item 4 covers the pod\'s own port names and well-known ports only',
  },
  'opaque-to-meshed-destination': {
    reason: "the app's non-HTTP TCP to a pod this manifest meshes is passed through in plaintext (transparent outbound), and that pod's STRICT sidecar refuses a caller without mTLS",
    item: 'issue 14 item 3 (discovery: knowing the destination is meshed, the sidecar would carry the TCP over mTLS; the sidecar client is not written yet)',
  },
  'undeclared-service-port': {
    reason: 'a Service of the manifest targets a port the container does not declare: iptables sends it to the catch-all, which refuses it (by design: docs/injector.md "Declare your ports")',
    item: 'none: by design (declare every port); `meshlet inject` sees the Service in the same file and could warn',
  },
  'clients-outside-the-cluster': {
    reason: 'a LoadBalancer/NodePort Service brings clients without a mesh identity to a STRICT port; nothing in the manifest makes it permissive',
    item: 'issue 14 item 7 documents the way in (docs/unmeshed-callers.md: mesh the ingress, or meshlet.io/permissive-ports + an unauthenticated route); the published manifest does not carry it and nothing warns',
  },
  'api-server-calls-webhook': {
    reason: "the API server (no mesh identity) calls the workload's own admission webhook on a STRICT port: with failurePolicy Fail every matching API request fails",
    item: 'issue 14 item 7 documents the way in (docs/unmeshed-callers.md: meshlet.io/skip-inbound-ports on the webhook port); the published manifest does not carry it and nothing warns',
  },
} satisfies Record<string, { reason: string; item: string }>;
type GapKind = keyof typeof GAP_KINDS;

interface KnownGap {
  workload: string;
  check: CheckName;
  /** The violation exactly as the check words it. */
  violation: string;
  gap: GapKind;
}

const KNOWN_GAPS: KnownGap[] = [
  // Deployment/argocd-dex-server (argo-cd-install.yaml)
  { workload: 'argo-cd-install.yaml:Deployment/argocd-dex-server', check: 'port-protocol', gap: 'protocol-only-on-service', violation: ":5556 is tcp (Service argocd-dex-server port http appProtocol TCP), the sidecar parses it as http" },
  // Deployment/argocd-notifications-controller (argo-cd-install.yaml)
  { workload: 'argo-cd-install.yaml:Deployment/argocd-notifications-controller', check: 'service-target-ports', gap: 'undeclared-service-port', violation: "Service argocd-notifications-controller-metrics port metrics -> :9001: not a declared port, the catch-all refuses it" },
  // Deployment/argocd-server (argo-cd-install.yaml)
  { workload: 'argo-cd-install.yaml:Deployment/argocd-server', check: 'port-protocol', gap: 'protocol-only-on-service', violation: ":8080 is tls (Service argocd-server port https), the sidecar parses it as http" },
  // Deployment/cert-manager-webhook (cert-manager.yaml)
  { workload: 'cert-manager.yaml:Deployment/cert-manager-webhook', check: 'callers-outside-mesh', gap: 'api-server-calls-webhook', violation: ":10250 (called by the API server: MutatingWebhookConfiguration cert-manager-webhook) is STRICT: the API server has no mesh identity" },
  { workload: 'cert-manager.yaml:Deployment/cert-manager-webhook', check: 'callers-outside-mesh', gap: 'api-server-calls-webhook', violation: ":10250 (called by the API server: ValidatingWebhookConfiguration cert-manager-webhook) is STRICT: the API server has no mesh identity" },
  // Deployment/ingress-nginx-controller (ingress-nginx-cloud.yaml)
  { workload: 'ingress-nginx-cloud.yaml:Deployment/ingress-nginx-controller', check: 'callers-outside-mesh', gap: 'clients-outside-the-cluster', violation: ":80 (Service ingress-nginx-controller port http, type LoadBalancer) is STRICT: clients outside the mesh are refused" },
  { workload: 'ingress-nginx-cloud.yaml:Deployment/ingress-nginx-controller', check: 'callers-outside-mesh', gap: 'clients-outside-the-cluster', violation: ":443 (Service ingress-nginx-controller port https, type LoadBalancer) is STRICT: clients outside the mesh are refused" },
  { workload: 'ingress-nginx-cloud.yaml:Deployment/ingress-nginx-controller', check: 'callers-outside-mesh', gap: 'api-server-calls-webhook', violation: ":8443 (called by the API server: ValidatingWebhookConfiguration ingress-nginx-admission) is STRICT: the API server has no mesh identity" },
  // Deployment/curl (istio-curl.yaml)
  { workload: 'istio-curl.yaml:Deployment/curl', check: 'service-target-ports', gap: 'undeclared-service-port', violation: "Service curl port http -> :80: not a declared port, the catch-all refuses it" },
  // Deployment/echo-v1 (istio-grpc-echo.yaml)
  { workload: 'istio-grpc-echo.yaml:Deployment/echo-v1', check: 'service-target-ports', gap: 'undeclared-service-port', violation: "Service echo port http -> :18080: not a declared port, the catch-all refuses it" },
  { workload: 'istio-grpc-echo.yaml:Deployment/echo-v1', check: 'service-target-ports', gap: 'undeclared-service-port', violation: "Service echo port tcp -> :19090: not a declared port, the catch-all refuses it" },
  // Deployment/echo-v2 (istio-grpc-echo.yaml)
  { workload: 'istio-grpc-echo.yaml:Deployment/echo-v2', check: 'service-target-ports', gap: 'undeclared-service-port', violation: "Service echo port http -> :18080: not a declared port, the catch-all refuses it" },
  { workload: 'istio-grpc-echo.yaml:Deployment/echo-v2', check: 'service-target-ports', gap: 'undeclared-service-port', violation: "Service echo port tcp -> :19090: not a declared port, the catch-all refuses it" },
  // Deployment/tcp-echo (istio-tcp-echo.yaml)
  { workload: 'istio-tcp-echo.yaml:Deployment/tcp-echo', check: 'port-protocol', gap: 'protocol-only-on-service', violation: ":9000 is tcp (Service tcp-echo port tcp), the sidecar parses it as http" },
  { workload: 'istio-tcp-echo.yaml:Deployment/tcp-echo', check: 'port-protocol', gap: 'protocol-only-on-service', violation: ":9001 is tcp (Service tcp-echo port tcp-other), the sidecar parses it as http" },
  // Deployment/frontend (microservices-demo.yaml)
  { workload: 'microservices-demo.yaml:Deployment/frontend', check: 'callers-outside-mesh', gap: 'clients-outside-the-cluster', violation: ":8080 (Service frontend-external port http, type LoadBalancer) is STRICT: clients outside the mesh are refused" },
  // Deployment/cartservice (microservices-demo.yaml)
  { workload: 'microservices-demo.yaml:Deployment/cartservice', check: 'outbound-declared', gap: 'opaque-to-meshed-destination', violation: "server -> redis-cart:6379 is tcp (Service redis-cart port tcp-redis): passed through without mTLS to a meshed pod, whose STRICT sidecar refuses it" },
];

// ---------------------------------------------------------------------------------------------
// Reading the manifest
// ---------------------------------------------------------------------------------------------

interface Injected {
  manifest: Obj;
  notes: string[];
  pod: Pod;
  warnings: string[];
  proxy: Container;
  init: Container;
  proxyEnv: Record<string, string>;
  initEnv: Record<string, string>;
  /** MESHLET_* of the proxy read by the sidecar's own reader: what the sidecar will do. */
  sidecar: Readonly<SidecarConfig>;
}

function inject(w: Workload): Injected {
  const { manifest, notes } = injectManifest(w.doc, DEFAULT_NAMESPACE, SETTINGS);
  const pod = at(manifest as Obj, w.path) as Pod;
  const result = injectPod(w.template, w.namespace, SETTINGS);
  const all = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  const proxy = all.find((c) => c.name === 'meshlet-proxy')!;
  const init = all.find((c) => c.name === 'meshlet-init')!;
  const envOf = (c: Container | undefined) => Object.fromEntries(((c?.env ?? []) as { name: string; value?: string }[]).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  const proxyEnv = envOf(proxy);
  const sidecar = proxy ? readSidecarConfig({ ...proxyEnv, MESHLET_NAMESPACE: w.namespace, MESHLET_SERVICE_ACCOUNT: w.template.spec.serviceAccountName ?? 'default', MESHLET_POD_NAME: 'pod-0' }) : (undefined as never);
  return { manifest: manifest as Obj, notes, pod, warnings: result.warnings, proxy, init, proxyEnv, initEnv: envOf(init), sidecar };
}

const ports = (s: string | undefined) =>
  (s ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map(Number);

const annotationsOf = (w: Workload): Record<string, string> => w.template.metadata?.annotations ?? {};
const skippedInbound = (w: Workload) => new Set(ports(annotationsOf(w)['meshlet.io/skip-inbound-ports']));
const permissive = (w: Workload) => new Set(ports(annotationsOf(w)['meshlet.io/permissive-ports']));

/** Declared TCP ports of the app containers (what the sidecar fronts, before skips). */
function declaredPorts(w: Workload): { container: string; port: number; name?: string; appProtocol?: string }[] {
  const seen = new Set<number>();
  const out: { container: string; port: number; name?: string; appProtocol?: string }[] = [];
  for (const c of w.template.spec.containers) {
    for (const p of c.ports ?? []) {
      if ((p.protocol ?? 'TCP') !== 'TCP' || seen.has(p.containerPort)) continue;
      seen.add(p.containerPort);
      out.push({ container: c.name, port: p.containerPort, name: p.name, appProtocol: p.appProtocol });
    }
  }
  return out;
}

/** Ports of the pod's own native sidecars (init containers with restartPolicy Always). */
function nativeSidecarPorts(w: Workload): { container: string; port: number }[] {
  return (w.template.spec.initContainers ?? [])
    .filter((c) => c.restartPolicy === 'Always')
    .flatMap((c) => (c.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP').map((p) => ({ container: c.name, port: p.containerPort })));
}

/** A port number or the name of a port of any container of the pod (Service targetPort semantics). */
function resolvePodPort(w: Workload, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  if (typeof port === 'string' && /^\d+$/.test(port)) return Number(port);
  for (const c of [...w.template.spec.containers, ...(w.template.spec.initContainers ?? [])]) {
    const p = (c.ports ?? []).find((x) => x.name === port);
    if (p) return p.containerPort;
  }
  return undefined;
}

function resolveContainerPort(c: Container, port: unknown): number | undefined {
  if (typeof port === 'number') return port;
  if (typeof port === 'string' && /^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

/** Services of the same file (and namespace) whose selector picks this pod template. */
function servicesSelecting(w: Workload): Obj[] {
  const labels = w.template.metadata?.labels ?? {};
  return w.siblings.filter((d) => {
    if (d.kind !== 'Service' || !d.spec?.selector || Object.keys(d.spec.selector).length === 0) return false;
    if ((d.metadata.namespace || DEFAULT_NAMESPACE) !== w.namespace) return false;
    return Object.entries(d.spec.selector as Record<string, string>).every(([k, v]) => labels[k] === v);
  });
}

function servicePortLabel(svc: Obj, sp: Obj): string {
  return `Service ${svc.metadata.name} port ${sp.name ?? sp.port}`;
}

// ---------------------------------------------------------------------------------------------
// The checks: each returns its violations (empty: the expectation holds)
// ---------------------------------------------------------------------------------------------

type Check = (w: Workload, r: Injected) => string[];

/** The original probe, as the sidecar's MESHLET_APP_PROBES must carry it. */
function expectedAppProbe(handler: string, probe: Probe, port: number): Obj {
  const timing = typeof probe.timeoutSeconds === 'number' ? { timeoutSeconds: probe.timeoutSeconds } : {};
  if (handler === 'tcpSocket') return { kind: 'tcp', port, ...timing };
  if (handler === 'grpc') {
    const service = (probe.grpc as Obj).service;
    return { kind: 'grpc', port, ...(service ? { service } : {}), ...timing };
  }
  const get = probe.httpGet!;
  return {
    port,
    path: get.path || '/',
    scheme: get.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP',
    ...(get.httpHeaders?.length ? { headers: get.httpHeaders.map((h) => ({ name: h.name, value: h.value })) } : {}),
    ...timing,
  };
}

/**
 * Kubelet probes in plaintext: every httpGet/grpc/tcpSocket probe on an intercepted port must
 * now go to the admin port, and the sidecar must run the original against the app. `which`
 * picks the probes on declared ports or those on undeclared ones.
 */
function probeCheck(which: 'declared' | 'undeclared'): Check {
  return (w, r) => {
    const out: string[] = [];
    const declared = new Set(declaredPorts(w).map((p) => p.port));
    const skipped = skippedInbound(w);
    w.template.spec.containers.forEach((c) => {
      const after = r.pod.spec.containers.find((x) => x.name === c.name)!;
      for (const [field, kind] of PROBE_KINDS) {
        const probe = c[field] as Probe | undefined;
        if (!probe) continue;
        const handler = (['httpGet', 'grpc', 'tcpSocket', 'exec'] as const).find((h) => probe[h] != null);
        if (!handler || handler === 'exec') {
          if (which === 'declared' && JSON.stringify(after[field]) !== JSON.stringify(probe)) out.push(`${c.name} ${field}: exec probe changed`);
          continue;
        }
        const action = probe[handler] as Obj;
        const port = resolveContainerPort(c, action.port)!;
        if ((which === 'declared') !== declared.has(port)) continue;
        const where = `${c.name} ${field}.${handler} :${port}`;
        if (action.host || skipped.has(port)) {
          if (JSON.stringify(after[field]) !== JSON.stringify(probe)) out.push(`${where}: changed although kubelet reaches it directly`);
          if (action.host) out.push(`${where}: host ${action.host}, kubelet does not probe this pod`);
          continue;
        }
        const get = (after[field] as Probe).httpGet;
        if (!get || get.port !== ADMIN_PORT || get.path !== `/app-health/${c.name}/${kind}` || get.scheme !== 'HTTP' || (handler !== 'httpGet' && (after[field] as Obj)[handler] !== undefined)) {
          out.push(`${where}: not moved to :${ADMIN_PORT}/app-health/${c.name}/${kind}`);
          continue;
        }
        const { [handler]: _h, httpGet: _g, ...timing } = probe as Obj;
        const { httpGet: _a, ...timingAfter } = after[field] as Obj;
        if (JSON.stringify(timing) !== JSON.stringify(timingAfter)) out.push(`${where}: timing fields not kept`);
        const original = r.sidecar.appProbes[`${c.name}/${kind}`];
        if (JSON.stringify(original) !== JSON.stringify(expectedAppProbe(handler, probe, port))) out.push(`${where}: MESHLET_APP_PROBES has ${JSON.stringify(original)}`);
      }
    });
    return out;
  };
}

/** Every declared TCP port (app containers and the pod's own native sidecars) is fronted by a sidecar listener, the same in the sidecar and in iptables. */
const declaredPortsFronted: Check = (w, r) => {
  const out: string[] = [];
  const skipped = skippedInbound(w);
  const fronted = new Map(r.sidecar.inboundPorts.map((p) => [p.appPort, p]));
  for (const p of [...declaredPorts(w), ...nativeSidecarPorts(w)]) {
    if (skipped.has(p.port)) continue;
    if (!fronted.has(p.port)) out.push(`${p.container} :${p.port} not in MESHLET_INBOUND_PORTS`);
  }
  if (r.initEnv.MESHLET_INBOUND_PORTS !== r.proxyEnv.MESHLET_INBOUND_PORTS) out.push('meshlet-init and meshlet-proxy disagree on MESHLET_INBOUND_PORTS');
  return out;
};

/** Every Service of the file that selects the pod sends its traffic to a port the sidecar fronts (an undeclared one lands on the catch-all and is refused). */
const serviceTargetPorts: Check = (w, r) => {
  const out: string[] = [];
  const fronted = new Set(r.sidecar.inboundPorts.map((p) => p.appPort));
  const skipped = skippedInbound(w);
  for (const svc of servicesSelecting(w)) {
    for (const sp of svc.spec.ports ?? []) {
      if ((sp.protocol ?? 'TCP') !== 'TCP') continue;
      const target = resolvePodPort(w, sp.targetPort ?? sp.port);
      if (target === undefined) out.push(`${servicePortLabel(svc, sp)} -> ${sp.targetPort}: no such port in the pod`);
      else if (!fronted.has(target) && !skipped.has(target)) out.push(`${servicePortLabel(svc, sp)} -> :${target}: not a declared port, the catch-all refuses it`);
    }
  }
  return out;
};

/** What the manifest says a port speaks: the container port's name/appProtocol and every Service port that targets it (Istio's conventions, port-protocol.ts). */
function declaredProtocols(w: Workload, port: number): { decision: PortProtocolDecision; source: string }[] {
  const out: { decision: PortProtocolDecision; source: string }[] = [];
  const cp = declaredPorts(w).find((p) => p.port === port);
  if (cp) {
    const decision = protocolFromServicePort({ name: cp.name, appProtocol: cp.appProtocol, port });
    if (decision !== 'detect') out.push({ decision, source: `containerPort ${cp.name ?? port}${cp.appProtocol ? ` appProtocol ${cp.appProtocol}` : ''}` });
  }
  for (const svc of servicesSelecting(w)) {
    for (const sp of svc.spec.ports ?? []) {
      if ((sp.protocol ?? 'TCP') !== 'TCP' || resolvePodPort(w, sp.targetPort ?? sp.port) !== port) continue;
      const decision = protocolFromServicePort({ name: sp.name, appProtocol: sp.appProtocol, port: sp.port });
      if (decision !== 'detect') out.push({ decision, source: `${servicePortLabel(svc, sp)}${sp.appProtocol ? ` appProtocol ${sp.appProtocol}` : ''}` });
    }
  }
  return out;
}

const OPAQUE_DECISIONS = new Set<PortProtocolDecision>(['tcp', 'tls', 'server-first']);

/** A port the manifest declares as TLS, opaque TCP or server-first must not be parsed as HTTP by the sidecar. */
const portProtocol: Check = (w, r) => {
  const out: string[] = [];
  for (const p of r.sidecar.inboundPorts) {
    const declared = declaredProtocols(w, p.appPort);
    // `tcp` says "opaque", not "not HTTP": where another declaration of the same port says
    // HTTP (cert-manager's metrics port: container `http-metrics`, Service `tcp-prometheus-…`),
    // parsing it as HTTP works. `tls` and `server-first` are never HTTP.
    const saysHttp = declared.some((d) => d.decision === 'http' || d.decision === 'h2c' || d.decision === 'grpc');
    for (const d of declared) {
      if (!OPAQUE_DECISIONS.has(d.decision) || p.protocol === 'tcp' || (d.decision === 'tcp' && saysHttp)) continue;
      out.push(`:${p.appPort} is ${d.decision} (${d.source}), the sidecar parses it as ${p.protocol}`);
    }
  }
  return out;
};

/**
 * Callers the manifest itself names that have no mesh identity: a LoadBalancer/NodePort
 * Service (clients outside the cluster), the API server calling a webhook or an APIService
 * of the same file. Their port must accept them: permissive or skipped.
 */
const callersOutsideMesh: Check = (w) => {
  const out: string[] = [];
  const open = new Set([...permissive(w), ...skippedInbound(w)]);
  const selecting = servicesSelecting(w);
  const targetOf = (svc: Obj, sp: Obj) => resolvePodPort(w, sp.targetPort ?? sp.port);
  for (const svc of selecting) {
    if (svc.spec.type !== 'LoadBalancer' && svc.spec.type !== 'NodePort') continue;
    for (const sp of svc.spec.ports ?? []) {
      const t = targetOf(svc, sp);
      if (t !== undefined && !open.has(t)) out.push(`:${t} (${servicePortLabel(svc, sp)}, type ${svc.spec.type}) is STRICT: clients outside the mesh are refused`);
    }
  }
  for (const d of w.siblings) {
    const refs: { via: string; service: Obj }[] = [];
    if (d.kind === 'MutatingWebhookConfiguration' || d.kind === 'ValidatingWebhookConfiguration') {
      for (const hook of d.webhooks ?? []) if (hook.clientConfig?.service) refs.push({ via: `${d.kind} ${d.metadata.name}`, service: hook.clientConfig.service });
    }
    if (d.kind === 'APIService' && d.spec?.service) refs.push({ via: `APIService ${d.metadata.name}`, service: d.spec.service });
    for (const ref of refs) {
      const svc = selecting.find((s) => s.metadata.name === ref.service.name && (s.metadata.namespace || DEFAULT_NAMESPACE) === (ref.service.namespace || DEFAULT_NAMESPACE));
      if (!svc) continue;
      const sp = (svc.spec.ports ?? []).find((p: Obj) => p.port === (ref.service.port ?? 443));
      const t = sp && targetOf(svc, sp);
      const line = t !== undefined && `:${t} (called by the API server: ${ref.via}) is STRICT: the API server has no mesh identity`;
      if (line && !open.has(t) && !out.includes(line)) out.push(line);
    }
  }
  return out;
};

/**
 * Outbound connections the manifest names, and what the caller's sidecar does with them
 * (transparent outbound, docs/protocol-detection.md): HTTP and h2 go through the pipeline over
 * mTLS; the app's own TLS and other TCP are passed through untouched to where the app was going
 * (MESHLET_OUTBOUND_PASSTHROUGH=allow), or refused (deny).
 *
 * - `<service>:<port>` in a container's env, args or command, for a Service of the same file
 *   whose port is declared non-HTTP (tcp, tls, server-first) and whose pods the file meshes:
 *   passed through in plaintext (or the app's TLS), the destination's STRICT sidecar refuses it.
 * - the Kubernetes API (TLS, 443) when the pod's ServiceAccount is bound by RBAC in the same
 *   file: reached only when TLS is passed through.
 */
const outboundDeclared: Check = (w, r) => {
  const out: string[] = [];
  const passthrough = r.sidecar.outboundPassthrough === 'allow';
  const services = w.siblings.filter((d) => d.kind === 'Service');
  const meshedPodsOf = (svc: Obj) => workloads.filter((x) => x.file === w.file && !EXPECTED_SKIPS[x.id] && servicesSelecting(x).includes(svc));
  const seen = new Set<string>();
  for (const c of [...(w.template.spec.initContainers ?? []), ...w.template.spec.containers]) {
    const values = [...((c.env ?? []) as Obj[]).map((e) => e.value).filter((v) => typeof v === 'string'), ...((c.args ?? []) as string[]), ...((c.command ?? []) as string[])];
    for (const v of values as string[]) {
      for (const m of v.matchAll(/(?:^|[\s=/,'"])([a-z0-9]([a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9.-]+)?:(\d{1,5})\b/g)) {
        const svc = services.find((s) => s.metadata.name === m[1]);
        const sp = svc?.spec.ports?.find((p: Obj) => p.port === Number(m[3]));
        if (!sp) continue;
        const decision = protocolFromServicePort({ name: sp.name, appProtocol: sp.appProtocol, port: sp.port });
        if (!OPAQUE_DECISIONS.has(decision) || meshedPodsOf(svc!).length === 0) continue;
        const line = passthrough
          ? `${c.name} -> ${m[1]}:${m[3]} is ${decision} (${servicePortLabel(svc!, sp)}): passed through without mTLS to a meshed pod, whose STRICT sidecar refuses it`
          : `${c.name} -> ${m[1]}:${m[3]} is ${decision} (${servicePortLabel(svc!, sp)}): refused, MESHLET_OUTBOUND_PASSTHROUGH=deny`;
        if (!seen.has(line)) {
          seen.add(line);
          out.push(line);
        }
      }
    }
  }
  const sa = w.template.spec.serviceAccountName ?? 'default';
  const binding = w.siblings.find(
    (d) => (d.kind === 'RoleBinding' || d.kind === 'ClusterRoleBinding') && (d.subjects ?? []).some((s: Obj) => s.kind === 'ServiceAccount' && s.name === sa && (s.namespace || d.metadata.namespace || DEFAULT_NAMESPACE) === w.namespace),
  );
  if (binding && w.template.spec.automountServiceAccountToken !== false && !passthrough) {
    out.push(`calls the Kubernetes API (ServiceAccount ${sa}, ${binding.kind} ${binding.metadata.name}): its TLS is refused, MESHLET_OUTBOUND_PASSTHROUGH=deny`);
  }
  return out;
};

/** Prometheus annotations on the pod: the app is still scraped (through the sidecar when its port is intercepted), or the sidecar's own metrics are announced. */
const metricsScrape: Check = (w, r) => {
  const out: string[] = [];
  const before = annotationsOf(w);
  const after = r.pod.metadata?.annotations ?? {};
  const scrape = before['prometheus.io/scrape'];
  if (scrape === undefined) {
    if (after['prometheus.io/scrape'] !== 'true' || after['prometheus.io/port'] !== String(ADMIN_PORT) || after['prometheus.io/path'] !== '/metrics') out.push('no scrape annotation: the sidecar metrics are not announced');
    return out;
  }
  if (scrape !== 'true') return out;
  const port = before['prometheus.io/port'];
  if (port === undefined || !/^\d+$/.test(port)) return [`prometheus.io/scrape without a numeric prometheus.io/port: Prometheus scrapes every declared port, each STRICT`];
  const n = Number(port);
  if (skippedInbound(w).has(n) || n === ADMIN_PORT) return out;
  if ((before['prometheus.io/scheme'] ?? 'http').toLowerCase() === 'https') return [`:${n} is scraped over https: not merged, the plaintext-less scrape is refused under STRICT`];
  const path = before['prometheus.io/path'] || '/metrics';
  if (after['prometheus.io/port'] !== String(ADMIN_PORT) || after['prometheus.io/path'] !== '/metrics/merged') out.push(`:${n}${path} is not pointed at :${ADMIN_PORT}/metrics/merged`);
  if (r.sidecar.appMetrics?.port !== n || r.sidecar.appMetrics?.path !== path) out.push(`MESHLET_APP_METRICS is ${r.proxyEnv.MESHLET_APP_METRICS}, not ${n}${path}`);
  return out;
};

/** The workload's own security context is kept; the sidecar runs as uid 2020, non-root, no capabilities. */
const securityContext: Check = (w, r) => {
  const out: string[] = [];
  if (JSON.stringify(r.pod.spec.securityContext) !== JSON.stringify(w.template.spec.securityContext)) out.push('pod securityContext changed');
  for (const c of [...w.template.spec.containers, ...(w.template.spec.initContainers ?? [])]) {
    const after = [...r.pod.spec.containers, ...(r.pod.spec.initContainers ?? [])].find((x) => x.name === c.name);
    if (JSON.stringify(after?.securityContext) !== JSON.stringify(c.securityContext)) out.push(`${c.name} securityContext changed`);
  }
  const sc = r.proxy.securityContext as Obj;
  if (sc.runAsUser !== PROXY_UID || sc.runAsGroup !== PROXY_UID || sc.runAsNonRoot !== true || sc.allowPrivilegeEscalation !== false || sc.privileged !== false || sc.readOnlyRootFilesystem !== true || JSON.stringify(sc.capabilities) !== '{"drop":["ALL"]}') {
    out.push(`meshlet-proxy securityContext ${JSON.stringify(sc)}`);
  }
  const ic = r.init.securityContext as Obj;
  if (ic.privileged !== false || ic.allowPrivilegeEscalation !== false || JSON.stringify(ic.capabilities) !== '{"add":["NET_ADMIN","NET_RAW"],"drop":["ALL"]}') out.push(`meshlet-init securityContext ${JSON.stringify(ic)}`);
  return out;
};

/** The injected containers request CPU and memory (schedulers and quotas count them) and cap memory. */
const resources: Check = (_w, r) => {
  const out: string[] = [];
  for (const c of [r.proxy, r.init]) {
    const res = c.resources as Obj | undefined;
    if (!res?.requests?.cpu || !res?.requests?.memory) out.push(`${c.name} has no cpu/memory requests`);
    if (!res?.limits?.memory) out.push(`${c.name} has no memory limit`);
  }
  return out;
};

/** A Job's pod completes when its containers exit: the proxy must be a native sidecar, not a container that runs forever. */
const jobCompletes: Check = (w, r) => {
  if (w.doc.kind !== 'Job' && w.doc.kind !== 'CronJob') return [];
  const inInit = (r.pod.spec.initContainers ?? []).find((c) => c.name === 'meshlet-proxy');
  if (!inInit || inInit.restartPolicy !== 'Always') return ['meshlet-proxy is not a native sidecar: the Job never completes'];
  const names = (r.pod.spec.initContainers ?? []).map((c) => c.name);
  if (names[0] !== 'meshlet-init' || names[1] !== 'meshlet-proxy') return [`init containers ${names.join(', ')}: the proxy must start before the pod's own`];
  return [];
};

const CHECKS: Record<CheckName, Check> = {
  'probes-reach-app': probeCheck('declared'),
  'undeclared-probe-ports': probeCheck('undeclared'),
  'declared-ports-fronted': declaredPortsFronted,
  'service-target-ports': serviceTargetPorts,
  'port-protocol': portProtocol,
  'callers-outside-mesh': callersOutsideMesh,
  'outbound-declared': outboundDeclared,
  'metrics-scrape': metricsScrape,
  'security-context': securityContext,
  resources,
  'job-completes': jobCompletes,
};

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

const withTemplate = (w: Workload, edit: (t: Obj) => void): Obj => {
  const copy = structuredClone(w.doc);
  edit(at(copy, w.path));
  return copy;
};

const label = (w: Workload) => `${w.doc.kind}/${w.doc.metadata.name}`;

describe('the corpus', () => {
  it('has at least 12 files from public repositories, each listed in SOURCES.md, and workloads of every kind it promises', () => {
    expect(corpusFiles.length).toBeGreaterThanOrEqual(12);
    const sources = readFileSync(join(CORPUS, 'SOURCES.md'), 'utf8');
    for (const f of corpusFiles) expect(sources, f).toContain(`\`${f}\``);
    const kinds = new Set(workloads.map((w) => w.doc.kind));
    for (const k of ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob']) expect(kinds, k).toContain(k);
  });

  it('keeps exercising what breaks meshes (a file removed or replaced must not lose one)', () => {
    const probes = workloads.flatMap((w) => w.template.spec.containers.flatMap((c) => PROBE_KINDS.map(([f]) => ({ w, c, p: c[f] as Probe | undefined })).filter((x) => x.p)));
    const declared = (w: Workload) => new Set(declaredPorts(w).map((p) => p.port));
    const has: Record<string, boolean> = {
      'grpc probe': probes.some((x) => x.p!.grpc),
      'tcpSocket probe': probes.some((x) => x.p!.tcpSocket),
      'httpGet probe with headers': probes.some((x) => x.p!.httpGet?.httpHeaders?.length),
      'probe on a named port': probes.some((x) => typeof (x.p!.httpGet ?? (x.p!.tcpSocket as Obj))?.port === 'string'),
      'probe on an undeclared port': probes.some((x) => x.p!.httpGet && !declared(x.w).has(resolveContainerPort(x.c, x.p!.httpGet.port)!)),
      'exec probe': probes.some((x) => x.p!.exec),
      'prometheus.io annotations': workloads.some((w) => annotationsOf(w)['prometheus.io/scrape'] === 'true'),
      hostNetwork: workloads.some((w) => w.template.spec.hostNetwork === true),
      "the pod's own native sidecar": workloads.some((w) => (w.template.spec.initContainers ?? []).some((c) => c.restartPolicy === 'Always')),
      'init containers': workloads.some((w) => (w.template.spec.initContainers ?? []).some((c) => c.restartPolicy !== 'Always')),
      'runAsNonRoot pod': workloads.some((w) => (w.template.spec.securityContext as Obj | undefined)?.runAsNonRoot === true),
      'LoadBalancer Service': workloads.some((w) => servicesSelecting(w).some((s) => s.spec.type === 'LoadBalancer')),
      'admission webhook served by the workload': workloads.some((w) => w.siblings.some((d) => d.kind === 'ValidatingWebhookConfiguration')),
    };
    expect(Object.entries(has).filter(([, v]) => !v).map(([k]) => k)).toEqual([]);
  });

  it('every known gap kind is in the docs table (docs/injector.md "Tested against real manifests")', () => {
    const docs = readFileSync(join(INJECTOR_FIXTURES, '../../../docs/injector.md'), 'utf8');
    for (const kind of Object.keys(GAP_KINDS)) expect(docs, kind).toContain(`\`${kind}\``);
    for (const g of KNOWN_GAPS) expect(Object.keys(GAP_KINDS)).toContain(g.gap);
  });

  it('every table entry names a workload of the corpus', () => {
    const ids = new Set(workloads.map((w) => w.id));
    for (const id of [...Object.keys(EXPECTED_SKIPS), ...Object.keys(EXPECTED_WARNINGS), ...KNOWN_GAPS.map((g) => g.workload)]) expect(ids, id).toContain(id);
  });
});

describe.each(corpusFiles)('%s', (file) => {
  const inFile = workloads.filter((w) => w.file === file);

  it('meshlet inject prints every document, each injected exactly as injectManifest does', async () => {
    const { code, stdout, stderr } = await runCli(['inject', join(CORPUS, file)]);
    expect(code, stderr).toBe(0);
    const out = parseAllDocuments(stdout)
      .map((d) => d.toJS())
      .filter((d) => d !== null);
    const input = loadDocs(file);
    expect(out).toHaveLength(input.length);
    input.forEach((doc, i) => expect(out[i]).toEqual(injectManifest(doc, DEFAULT_NAMESPACE, SETTINGS).manifest));
  });

  for (const w of inFile) {
    describe(label(w), () => {
      const skip = EXPECTED_SKIPS[w.id];

      it('the original is schema-valid (the corpus itself is sound)', () => {
        expect(() => new w.model(w.doc as never).validate()).not.toThrow();
      });

      it(skip ? `is left alone (${skip})` : 'is injected, schema-valid, with the warnings listed', () => {
        const r = injectManifest(w.doc, DEFAULT_NAMESPACE, SETTINGS);
        const result = injectPod(w.template, w.namespace, SETTINGS);
        expect(result.warnings).toEqual(EXPECTED_WARNINGS[w.id] ?? []);
        if (skip) {
          expect(result.outcome === 'skipped' && result.reason).toBe(skip);
          expect(r.manifest).toBe(w.doc);
          return;
        }
        expect(result.outcome).toBe('injected');
        expect(r.notes).toEqual([...result.warnings.map((x) => `${label(w)}: ${x}`), `${label(w)}: injected`]);
        expect(() => new w.model(r.manifest as never).validate()).not.toThrow();
      });

      it('is idempotent: injecting the injected manifest changes nothing', () => {
        const once = injectManifest(w.doc, DEFAULT_NAMESPACE, SETTINGS).manifest as Obj;
        const twice = injectManifest(once, DEFAULT_NAMESPACE, SETTINGS);
        expect(twice.manifest).toEqual(once);
        if (!skip) expect(twice.notes).toEqual([`${label(w)}: skipped (already injected (meshlet.io/status present))`]);
      });

      it('is left untouched when its pod template opts out (annotation or label)', () => {
        const byAnnotation = withTemplate(w, (t) => ((t.metadata ??= {}).annotations = { ...t.metadata.annotations, 'meshlet.io/inject': 'disabled' }));
        expect(injectManifest(byAnnotation, DEFAULT_NAMESPACE, SETTINGS).manifest).toBe(byAnnotation);
        const byLabel = withTemplate(w, (t) => ((t.metadata ??= {}).labels = { ...t.metadata.labels, 'meshlet.io/inject': 'disabled' }));
        expect(injectManifest(byLabel, DEFAULT_NAMESPACE, SETTINGS).manifest).toBe(byLabel);
      });

      if (skip) return;
      for (const [name, check] of Object.entries(CHECKS) as [CheckName, Check][]) {
        const gaps = KNOWN_GAPS.filter((g) => g.workload === w.id && g.check === name);
        it(gaps.length === 0 ? name : `${name} (known gaps: ${[...new Set(gaps.map((g) => g.gap))].join(', ')})`, () => {
          const violations = check(w, inject(w));
          if (process.env.CORPUS_DUMP) for (const v of violations) appendFileSync(process.env.CORPUS_DUMP, `${JSON.stringify({ workload: w.id, check: name, violation: v })}\n`);
          // A gap that closed fails here too: move its entry out of KNOWN_GAPS.
          expect(violations).toEqual(gaps.map((g) => g.violation));
        });
      }
    });
  }
});
