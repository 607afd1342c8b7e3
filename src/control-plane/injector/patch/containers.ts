import { SIDECAR_ENV, type AppProbe, type IdentitySourceKind } from '../../../data-plane/sidecar/sidecar-env.ts';
import { IPTABLES_ENV } from '../iptables/env.ts';
import type { PodAnnotations } from './annotations.ts';
import { formatInboundPorts, type InboundPortPlan } from './inbound-ports.ts';
import {
  ADMIN_PORT,
  ADMIN_PORT_NAME,
  IMAGE_CLI,
  INIT_CONTAINER,
  POD_LABELS_FILE,
  PROXY_CONTAINER,
  PROXY_UID,
  TOKEN_FILE,
  TRUST_BUNDLE_FILE,
  VOLUMES,
} from './pod-layout.ts';
import { planRevocationFederation } from './revocation-federation.ts';
import type { InjectionSettings } from './settings.ts';
import { memoryQuantityBytes, proxyRuntime } from './heap-settings.ts';
import type { MeshletVolumePlan } from './volumes.ts';

/** What the two injected containers are built from. */
export interface MeshPlan {
  inbound: InboundPortPlan[];
  volumes: MeshletVolumePlan;
  appProbes: Record<string, AppProbe>;
  /** MESHLET_APP_METRICS (`PORT/PATH`) when the app's metrics are merged, else null. */
  appMetrics: string | null;
  annotations: PodAnnotations;
  native: boolean;
}

/** Proxy resources when no annotation says otherwise: small requests, a memory ceiling, no CPU limit (throttling adds latency to every hop). */
export const DEFAULT_PROXY_RESOURCES = { cpuRequest: '50m', memoryRequest: '64Mi', memoryLimit: '256Mi' } as const;

type EnvEntry = { name: string; value: string } | { name: string; valueFrom: { fieldRef: { fieldPath: string } } };

const fromField = (name: string, fieldPath: string): EnvEntry => ({ name, valueFrom: { fieldRef: { fieldPath } } });
const value = (name: string, v: string): EnvEntry => ({ name, value: v });

/** Variables the sidecar AND the iptables init container read: both must see the same ports. */
function portEnv(plan: MeshPlan): EnvEntry[] {
  return [value(SIDECAR_ENV.inboundPorts.name, formatInboundPorts(plan.inbound))];
}

export function proxyContainer(plan: MeshPlan, settings: InjectionSettings): Record<string, unknown> {
  const a = plan.annotations;
  const r = a.resources;
  const memoryLimit = r.memoryLimit ?? DEFAULT_PROXY_RESOURCES.memoryLimit;
  // annotations.ts refused a limit that is not a byte quantity; the default is one.
  const runtime = proxyRuntime(memoryQuantityBytes(memoryLimit) ?? 0);
  const identitySource = a.identitySource ?? (SIDECAR_ENV.identitySource.default as IdentitySourceKind);
  // The same plan volumes.ts mounted from: every path named here is mounted.
  const feeds = planRevocationFederation(identitySource);
  const env: EnvEntry[] = [
    // glibc's arena cap (heap-settings.ts); Node's own flags are on the command line below.
    ...Object.entries(runtime.env).map(([name, v]) => value(name, v)),
    value(SIDECAR_ENV.trustDomain.name, settings.trustDomain),
    fromField(SIDECAR_ENV.namespace.name, 'metadata.namespace'),
    fromField(SIDECAR_ENV.serviceAccount.name, 'spec.serviceAccountName'),
    fromField(SIDECAR_ENV.podName.name, 'metadata.name'),
    value(SIDECAR_ENV.podLabelsFile.name, POD_LABELS_FILE),
    value(SIDECAR_ENV.identitySource.name, identitySource),
    value(SIDECAR_ENV.caAddress.name, settings.caAddress),
    value(SIDECAR_ENV.tokenFile.name, TOKEN_FILE),
    value(SIDECAR_ENV.trustBundleFile.name, TRUST_BUNDLE_FILE),
    value(SIDECAR_ENV.revocationList.name, feeds.revocationList),
    ...(feeds.federationBundles === null ? [] : [value(SIDECAR_ENV.federationBundles.name, feeds.federationBundles)]),
    ...portEnv(plan),
    value(SIDECAR_ENV.permissivePorts.name, a.permissivePorts.join(',')),
    value(SIDECAR_ENV.policyDir.name, VOLUMES.policy.mountPath),
    value(SIDECAR_ENV.defaultPolicy.name, a.defaultPolicy ?? settings.defaultPolicy),
    // allow is the sidecar's own default: written only when the pod or the mesh chose another (pods injected before stay as they were).
    ...((a.defaultClientPolicy ?? settings.defaultClientPolicy) === 'allow' ? [] : [value(SIDECAR_ENV.defaultClientPolicy.name, a.defaultClientPolicy ?? settings.defaultClientPolicy)]),
    value(SIDECAR_ENV.logLevel.name, a.logLevel ?? SIDECAR_ENV.logLevel.default),
    ...(a.serverFirstPorts === undefined ? [] : [value(SIDECAR_ENV.serverFirstPorts.name, a.serverFirstPorts.size === 0 ? 'none' : [...a.serverFirstPorts].join(','))]),
    value(SIDECAR_ENV.appProbes.name, JSON.stringify(plan.appProbes)),
    ...(plan.appMetrics === null ? [] : [value(SIDECAR_ENV.appMetrics.name, plan.appMetrics)]),
    ...(settings.discovery === 'on'
      ? [
          value(SIDECAR_ENV.discovery.name, 'on'),
          value(SIDECAR_ENV.clusterDomain.name, settings.clusterDomain),
          value(SIDECAR_ENV.podCidrs.name, settings.podCidrs.join(',')),
          value(SIDECAR_ENV.serviceCidrs.name, settings.serviceCidrs.join(',')),
        ]
      : []),
  ];
  const requests = { cpu: r.cpuRequest ?? DEFAULT_PROXY_RESOURCES.cpuRequest, memory: r.memoryRequest ?? DEFAULT_PROXY_RESOURCES.memoryRequest };
  const limits: Record<string, string> = { memory: memoryLimit };
  if (r.cpuLimit) limits.cpu = r.cpuLimit;
  const adminGet = (path: string) => ({ httpGet: { path, port: ADMIN_PORT, scheme: 'HTTP' } });

  const container: Record<string, unknown> = {
    name: PROXY_CONTAINER,
    image: settings.image,
    imagePullPolicy: settings.imagePullPolicy,
    // The image's entry point with Node's flags in front of the script: the V8 heap sized from
    // the memory limit, one GC thread (heap-settings.ts; not all are allowed in NODE_OPTIONS).
    command: [IMAGE_CLI[0], ...runtime.nodeFlags, ...IMAGE_CLI.slice(1)],
    args: ['sidecar'],
    ports: [{ name: ADMIN_PORT_NAME, containerPort: ADMIN_PORT, protocol: 'TCP' }],
    env,
    resources: { requests, limits },
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // /ready is 200 only with an SVID loaded and every listener bound: the app starts after
    // that (native: kubelet waits for startupProbe; regular: postStart below).
    startupProbe: { ...adminGet('/ready'), periodSeconds: 1, failureThreshold: 120, timeoutSeconds: 1 },
    readinessProbe: { ...adminGet('/ready'), periodSeconds: 5, failureThreshold: 3, timeoutSeconds: 1 },
    livenessProbe: { ...adminGet('/live'), periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 1 },
    volumeMounts: plan.volumes.mounts,
  };
  if (plan.native) {
    container.restartPolicy = 'Always';
  } else {
    // Kubernetes < 1.29: containers start in order, and kubelet does not start the next one
    // until this postStart hook returns, so the app waits for the proxy to be ready.
    container.lifecycle = { postStart: { exec: { command: [...IMAGE_CLI, 'wait-ready', '--timeout', '120s'] } } };
  }
  return container;
}

/**
 * The init container that installs the iptables rules. The only container with NET_ADMIN
 * and NET_RAW, and the only one running as root (iptables needs both); not privileged, no
 * privilege escalation. Its root filesystem stays writable because iptables takes its lock
 * at /run/xtables.lock.
 */
export function iptablesInitContainer(plan: MeshPlan, settings: InjectionSettings): Record<string, unknown> {
  const a = plan.annotations;
  const env: EnvEntry[] = [...portEnv(plan), value(IPTABLES_ENV.proxyUid.name, String(PROXY_UID))];
  if (a.skipInboundPorts.length > 0) env.push(value(IPTABLES_ENV.skipInboundPorts.name, a.skipInboundPorts.join(',')));
  if (a.skipOutboundPorts.length > 0) env.push(value(IPTABLES_ENV.skipOutboundPorts.name, a.skipOutboundPorts.join(',')));
  if (a.skipOutboundCidrs.length > 0) env.push(value(IPTABLES_ENV.skipOutboundCidrs.name, a.skipOutboundCidrs.join(',')));
  return {
    name: INIT_CONTAINER,
    image: settings.image,
    imagePullPolicy: settings.imagePullPolicy,
    args: ['iptables', 'apply'],
    env,
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}
