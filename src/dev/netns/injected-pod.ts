import { parseAllDocuments } from 'yaml';
import { HarnessError } from './errors.ts';

/** One container of an injected pod, as the harness runs it: `meshlet <args>` or the test's own app. */
export interface ContainerRun {
  name: string;
  args: string[];
  /** Node's flags from an explicit `command: [node, …flags, /app/bin/meshlet.js]` (the sidecar's), else none. */
  nodeFlags: string[];
  /** Literal values and resolved downward-API fieldRefs; see `mountEnv` for volume paths. */
  env: Record<string, string>;
  /** securityContext.runAsUser/runAsGroup of the container, else of the pod; undefined = root. */
  uid: number | undefined;
  gid: number | undefined;
  volumeMounts: { name: string; mountPath: string }[];
  ports: number[];
}

/** What a kubelet would run for an injected Pod, in order: init containers, sidecars, app containers. */
export interface InjectedPodSpec {
  name: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  /** Plain init containers (run to completion before anything else, e.g. meshlet-init). */
  initContainers: ContainerRun[];
  /** Native sidecars: init containers with restartPolicy Always (e.g. meshlet-proxy). */
  sidecars: ContainerRun[];
  containers: ContainerRun[];
}

interface K8sContainer {
  name: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { containerPort: number }[];
  securityContext?: { runAsUser?: number; runAsGroup?: number };
  volumeMounts?: { name: string; mountPath: string }[];
  restartPolicy?: string;
}

interface K8sPod {
  kind?: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: { serviceAccountName?: string; securityContext?: { runAsUser?: number; runAsGroup?: number }; initContainers?: K8sContainer[]; containers?: K8sContainer[] };
}

/**
 * The harness runs meshlet's containers as `node <flags> <the checkout's meshlet> <args>`: their
 * command may only be the image's own entry point with Node flags in front of it. The test's
 * own app containers are started by the tests themselves; their command is not read.
 */
function nodeFlagsOf(c: K8sContainer): string[] {
  if (c.command === undefined || !c.name.startsWith('meshlet-')) return [];
  const [node, ...rest] = c.command;
  const script = rest.pop();
  if (node !== 'node' || script === undefined || !script.endsWith('/bin/meshlet.js') || rest.some((f) => !f.startsWith('--'))) {
    throw new HarnessError('E2E_UNSUPPORTED_SPEC', `${c.name}: command ${JSON.stringify(c.command)} is not \`node [--flags] …/bin/meshlet.js\`, which the harness cannot run`);
  }
  return rest;
}

/**
 * Reads the first Pod of `meshlet inject`'s output (YAML text or an object) into what the
 * harness runs. Only the downward-API fields the injector uses are resolved; anything else
 * is an E2E_UNSUPPORTED_SPEC error rather than a silently wrong environment.
 */
export function readInjectedPod(manifest: string | object, context: { podIp?: string } = {}): InjectedPodSpec {
  const pod = (typeof manifest === 'string' ? parseAllDocuments(manifest).map((d) => d.toJS() as K8sPod).find((d) => d?.kind === 'Pod') : manifest) as K8sPod | undefined;
  if (!pod?.spec) throw new HarnessError('E2E_UNSUPPORTED_SPEC', 'no Pod with a spec in the manifest');
  const name = pod.metadata?.name ?? 'pod';
  const namespace = pod.metadata?.namespace ?? 'default';
  const serviceAccount = pod.spec.serviceAccountName ?? 'default';
  const fields: Record<string, string | undefined> = {
    'metadata.name': name,
    'metadata.namespace': namespace,
    'spec.serviceAccountName': serviceAccount,
    'status.podIP': context.podIp,
  };
  const podSecurity = pod.spec.securityContext ?? {};
  const run = (c: K8sContainer): ContainerRun => ({
    name: c.name,
    args: c.args ?? [],
    nodeFlags: nodeFlagsOf(c),
    env: Object.fromEntries(
      (c.env ?? []).map((e) => {
        if (e.valueFrom === undefined) return [e.name, e.value ?? ''];
        const path = e.valueFrom.fieldRef?.fieldPath;
        const value = path === undefined ? undefined : fields[path];
        if (value === undefined) throw new HarnessError('E2E_UNSUPPORTED_SPEC', `${c.name}: env ${e.name} comes from ${JSON.stringify(e.valueFrom)}, which the harness cannot resolve`);
        return [e.name, value];
      }),
    ),
    uid: c.securityContext?.runAsUser ?? podSecurity.runAsUser,
    gid: c.securityContext?.runAsGroup ?? podSecurity.runAsGroup,
    volumeMounts: (c.volumeMounts ?? []).map((m) => ({ name: m.name, mountPath: m.mountPath })),
    ports: (c.ports ?? []).map((p) => p.containerPort),
  });
  const inits = pod.spec.initContainers ?? [];
  return {
    name,
    namespace,
    serviceAccount,
    labels: pod.metadata?.labels ?? {},
    initContainers: inits.filter((c) => c.restartPolicy !== 'Always').map(run),
    sidecars: inits.filter((c) => c.restartPolicy === 'Always').map(run),
    containers: (pod.spec.containers ?? []).map(run),
  };
}

/**
 * The container's environment with volume paths moved to where the test put each volume:
 * processes in pods share the machine's filesystem, so instead of mounting a volume at its
 * mountPath, every env value under a mountPath is rewritten to the volume's directory
 * (`/etc/meshlet/policy` -> `/tmp/meshlet-e2e-<run>/policy`). Volumes not in `dirs` are left
 * as they are.
 */
export function mountEnv(container: ContainerRun, dirs: Record<string, string>): Record<string, string> {
  const env = { ...container.env };
  for (const m of container.volumeMounts) {
    const dir = dirs[m.name];
    if (dir === undefined) continue;
    for (const [k, v] of Object.entries(env)) {
      if (v === m.mountPath) env[k] = dir;
      else if (v.startsWith(`${m.mountPath}/`)) env[k] = dir + v.slice(m.mountPath.length);
    }
  }
  return env;
}
