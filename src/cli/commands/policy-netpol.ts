import type { Command, CommandIo } from '../command.ts';
import { parseFlags } from '../command.ts';
import { UsageError } from '../../common/errors/meshlet-error.ts';
import { DEFAULT_TRUST_DOMAIN, validateTrustDomain } from '../../common/identity/spiffe-id.ts';
import { canonicalCidr } from '../../control-plane/netpol/cidr.ts';
import { DEFAULT_NETPOL_OPTIONS, generateNetworkPolicies, NetpolError, policyNamespace, type NetpolInput, type NetpolOptions } from '../../control-plane/netpol/generate.ts';
import { isDnsLabel } from '../../control-plane/netpol/name.ts';
import { ANYWHERE, API_SERVER_SERVICE, DEFAULT_API_SERVER_PORTS, DEFAULT_CONTROL_PLANE_NAMESPACE, IDENTITY_SERVICE, KUBE_DNS } from '../../control-plane/netpol/network-policy.ts';
import { renderNetworkPolicies } from '../../control-plane/netpol/render.ts';
import { ADMIN_PORT } from '../../control-plane/injector/patch/pod-layout.ts';
import { SERVICE_ACCOUNT_LABEL } from '../../control-plane/injector/patch/service-account-label.ts';
import { parseDefaultPolicy } from '../../data-plane/policy/default-policy.ts';
import { formatPolicyError } from '../../data-plane/policy/parse.ts';
import type { ManifestPolicy } from '../../data-plane/policy/parse.ts';

/**
 * policy.ts lists this command in its `commands`, and this command reads its input with
 * policy.ts's reader: imported when the command runs, so neither module needs the other while
 * it is being evaluated (a static import both ways would leave `commands` half-made when this
 * module is loaded first).
 */
const policyCheckReader = () => import('./policy.ts');

const help = `Usage: meshlet policy netpol FILE|DIR|-… [--namespace NS] [--trust-domain TD]
         [--mesh-default deny|all-authenticated|audit] [--control-plane-namespace NS]
         [--probe-cidr CIDR]… [--metrics-namespace NS]… [--api-server-cidr CIDR]…
         [--api-server-ports P,…] [--default-deny-egress]

Prints Kubernetes NetworkPolicies (networking.k8s.io/v1, a YAML stream for kubectl apply -f -)
that implement the L3/L4 shadow of authorization policies: defense in depth below the
sidecar, which still authorizes every request on the verified SPIFFE ID. Policies are read as
\`policy check\` reads them (files, directories, ConfigMaps, rendered manifests, - for stdin);
an invalid policy prints its errors as \`policy check\` does and nothing is generated.

One NetworkPolicy per workload selector (a server and a client with the same selector share
it), named meshlet-<policy>-<entries>:
  - pods: selector.matchLabels, and selector.serviceAccount as the label the injector puts on
    every pod, ${SERVICE_ACCOUNT_LABEL}: <ServiceAccount>;
  - ingress (a server): each declared port from its routes' callers: spiffeId -> that
    ServiceAccount's pods in its namespace, namespace -> the namespace, the mesh's trustDomain
    -> every namespace; anyAuthenticated, unauthenticated and other trust domains -> every
    source (L3/L4 cannot tell). A server whose default (or the mesh default) is not deny, or in
    mode audit, admits every caller on every port: ingress is then not restricted;
  - egress (a client): DNS (UDP and TCP ${KUBE_DNS.port} to ${KUBE_DNS.namespace} pods ${Object.entries(KUBE_DNS.podLabels).map(([k, v]) => `${k}=${v}`).join(',')}), the identity
    service (TCP ${IDENTITY_SERVICE.port}, pods ${Object.entries(IDENTITY_SERVICE.podLabels).map(([k, v]) => `${k}=${v}`).join(',')} of the control-plane namespace),
    and each destination: identities, namespaces and Services -> their pods on every port (the
    ports a destination lists are the ones the app dials; NetworkPolicy sees the pod's port
    after the Service's DNAT); cidr -> that ipBlock on its ports; host -> ${ANYWHERE.map((b) => b.cidr).join(' and ')} on its
    ports (a warning: NetworkPolicy cannot name a DNS name; no ports: every port); Service
    ${API_SERVER_SERVICE.namespace}/${API_SERVER_SERVICE.name} -> --api-server-cidr. A pod with no client entry keeps its egress
    unless --default-deny-egress;
  - always, with ingress: the sidecar's admin port ${ADMIN_PORT} (kubelet probes, Prometheus).

Where a NetworkPolicy is wider than the L7 policy, its annotation meshlet.io/netpol-notes says
so; warnings go to stderr as "warning: …" lines. docs/network-policy.md has every rule and limit.

Flags:
  --namespace NS               namespace of the policy's workloads when the policy has no
                               metadata.namespace (then required; if both, they must agree)
  --trust-domain TD            the mesh's trust domain (default ${DEFAULT_TRUST_DOMAIN}): callers and
                               destinations in it are this cluster's pods
  --mesh-default D             the mesh default policy for servers without default and pods
                               with no server (default: env MESHLET_DEFAULT_POLICY, else deny)
  --control-plane-namespace NS where the identity service runs (default ${DEFAULT_CONTROL_PLANE_NAMESPACE})
  --probe-cidr CIDR            the node network kubelet probes from; repeatable. With it (or
                               --metrics-namespace) the admin port admits only those sources;
                               without both (default) every source
  --metrics-namespace NS       a namespace whose pods scrape the admin port (Prometheus); repeatable
  --api-server-cidr CIDR       the API server's endpoint addresses; repeatable. Allowed to
                               clients that list the Service ${API_SERVER_SERVICE.namespace}/${API_SERVER_SERVICE.name} as a destination
                               (the sidecar itself never calls the API server)
  --api-server-ports P,…       the API server's ports (default ${DEFAULT_API_SERVER_PORTS.join(',')})
  --default-deny-egress        pods with a server and no client entry get egress to DNS and
                               the identity service only (default: their egress is left alone,
                               as the mesh's client default allow leaves it)

Exit status: 0 when NetworkPolicies were printed (warnings allowed), 1 when a policy is invalid
or unreadable or none was found, 2 on a usage error (--namespace missing included).`;

/** A flag that names a namespace: a DNS label, as Kubernetes requires. */
function namespaceFlag(flag: string, value: string): string {
  if (!isDnsLabel(value)) throw new UsageError(`--${flag} ${JSON.stringify(value)} is not a namespace name (a DNS label: a-z, 0-9 and -, at most 63)`);
  return value;
}

function cidrFlag(flag: string, value: string): string {
  const cidr = canonicalCidr(value);
  if (cidr === null) throw new UsageError(`--${flag} ${JSON.stringify(value)} is not an IPv4 CIDR (a.b.c.d/0-32) or an IPv6 CIDR (e.g. fd00::/8)`);
  return cidr;
}

function portsFlag(flag: string, value: string): number[] {
  const ports = value.split(',').map((p) => p.trim());
  for (const p of ports) {
    if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw new UsageError(`--${flag} ${JSON.stringify(value)}: ${JSON.stringify(p)} is not a port (1-65535)`);
  }
  return [...new Set(ports.map(Number))];
}

/** The flags as generator options; every bad value is a usage error naming its flag. */
export function netpolOptions(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): NetpolOptions {
  const list = (name: string) => (values[name] as string[] | undefined) ?? [];
  const trustDomain = (values['trust-domain'] as string | undefined) ?? DEFAULT_TRUST_DOMAIN;
  try {
    validateTrustDomain(trustDomain);
  } catch (err) {
    throw new UsageError(`--trust-domain: ${(err as Error).message}`);
  }
  let meshDefault;
  try {
    const flag = values['mesh-default'] as string | undefined;
    meshDefault = parseDefaultPolicy(flag ?? env.MESHLET_DEFAULT_POLICY, flag !== undefined ? '--mesh-default' : 'MESHLET_DEFAULT_POLICY');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const cp = values['control-plane-namespace'] as string | undefined;
  const apiPorts = values['api-server-ports'] as string | undefined;
  return {
    trustDomain,
    meshDefault,
    controlPlaneNamespace: cp === undefined ? DEFAULT_NETPOL_OPTIONS.controlPlaneNamespace : namespaceFlag('control-plane-namespace', cp),
    probeCidrs: list('probe-cidr').map((c) => cidrFlag('probe-cidr', c)),
    metricsNamespaces: list('metrics-namespace').map((n) => namespaceFlag('metrics-namespace', n)),
    apiServerCidrs: list('api-server-cidr').map((c) => cidrFlag('api-server-cidr', c)),
    apiServerPorts: apiPorts === undefined ? DEFAULT_API_SERVER_PORTS : portsFlag('api-server-ports', apiPorts),
    defaultDenyEgress: values['default-deny-egress'] === true,
  };
}

/** Every policy of the inputs, parsed; the first problem of any input stops generation (exit 1, nothing on stdout). */
async function readPolicies(args: readonly string[], io: CommandIo): Promise<{ found: ManifestPolicy[]; skipped: number; failed: boolean }> {
  const { scanPolicyInputs } = await policyCheckReader();
  const found: ManifestPolicy[] = [];
  let skipped = 0;
  let failed = false;
  await scanPolicyInputs(args, io, {
    unreadable(label, err) {
      failed = true;
      io.stderr.write(formatPolicyError({ severity: 'error', code: err.code, message: err.message, path: '', source: label }) + '\n');
    },
    scanned(scan) {
      found.push(...scan.policies);
      skipped += scan.skipped.length;
    },
  });
  return { found, skipped, failed };
}

const netpol: Command = {
  name: 'policy netpol',
  summary: 'print the NetworkPolicies that are the L3/L4 shadow of policies (defense in depth)',
  help,
  async run(argv, io) {
    const { values, positionals } = parseFlags(
      argv,
      {
        namespace: { type: 'string' },
        'trust-domain': { type: 'string' },
        'mesh-default': { type: 'string' },
        'control-plane-namespace': { type: 'string' },
        'probe-cidr': { type: 'string', multiple: true },
        'metrics-namespace': { type: 'string', multiple: true },
        'api-server-cidr': { type: 'string', multiple: true },
        'api-server-ports': { type: 'string' },
        'default-deny-egress': { type: 'boolean' },
      },
      true,
    );
    if (positionals.length === 0) throw new UsageError('at least one FILE, DIR or - is required');
    const options = netpolOptions(values);
    const namespaceFromFlag = values.namespace === undefined ? undefined : namespaceFlag('namespace', values.namespace);

    const { found, skipped, failed } = await readPolicies(positionals, io);
    let invalid = failed;
    const inputs: NetpolInput[] = [];
    for (const { label, result } of found) {
      if (!result.ok) {
        // As `policy check` reports it, on stderr: stdout is for the NetworkPolicies only.
        for (const e of result.errors) io.stderr.write(formatPolicyError(e) + '\n');
        const n = result.errors.filter((e) => e.severity === 'error').length;
        io.stderr.write(`${label}: INVALID, ${n} error${n === 1 ? '' : 's'}\n`);
        invalid = true;
        continue;
      }
      try {
        inputs.push({ label, policy: result.policy, namespace: policyNamespace(result.policy, label, namespaceFromFlag) });
      } catch (err) {
        if (err instanceof NetpolError) throw new UsageError(err.message);
        throw err;
      }
    }
    if (invalid) return 1;
    if (found.length === 0) {
      const { PolicyNoneFoundError } = await policyCheckReader();
      throw new PolicyNoneFoundError(positionals.map((p) => (p === '-' ? '<stdin>' : p)).join(', '), skipped);
    }

    const { networkPolicies, warnings } = generateNetworkPolicies(inputs, options);
    for (const w of warnings) io.stderr.write(`warning: ${w}\n`);
    io.stdout.write(renderNetworkPolicies(networkPolicies, inputs.map((i) => i.label)));
    return 0;
  },
};

export const commands: Command[] = [netpol];
