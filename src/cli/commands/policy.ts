import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command, CommandIo } from '../command.ts';
import { parseFlags, requireFlag } from '../command.ts';
import { MeshletError, UsageError } from '../../common/errors/meshlet-error.ts';
import { parseSpiffeId } from '../../common/identity/spiffe-id.ts';
import { isIP } from 'node:net';
import { compilePolicy, selectServer, type CompiledPolicy } from '../../data-plane/policy/compile.ts';
import { compileClient, describeDestination, selectClient, type ClientDecision, type DestinationFacts } from '../../data-plane/policy/client-policy.ts';
import { hostPatternProblem } from '../../data-plane/policy/semantic-checks.ts';
import { decide } from '../../data-plane/policy/decide.ts';
import { MESH_CLIENT_DEFAULT_POLICY, parseDefaultPolicy } from '../../data-plane/policy/default-policy.ts';
import { PolicyInvalidError } from '../../data-plane/policy/errors.ts';
import { normalizePath } from '../../data-plane/policy/normalize-path.ts';
import { findPolicies, formatPolicyError, POLICY_API_GROUP, type ManifestPolicy, type PolicyConfigMapRules, type SkippedObject } from '../../data-plane/policy/parse.ts';
import { DEFAULT_POLICY_CONFIGMAP } from '../../control-plane/injector/patch/pod-layout.ts';
import { describeRouteMatch, foldPath } from '../../data-plane/policy/route-match.ts';
import { CLIENT_MESH_DEFAULTS, type ClientMeshDefault, type Policy, type PolicyError, type WorkloadSelf } from '../../data-plane/policy/types.ts';
import { commands as netpolCommands } from './policy-netpol.ts';

/** A policy file that cannot be read at all. */
export class PolicyFileError extends MeshletError {
  constructor(file: string, cause: Error) {
    super('POLICY_FILE_UNREADABLE', `cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? cause.message}`, { cause });
  }
}

/**
 * The largest file `check` and `explain` read: several ConfigMaps of up to 1 MiB each. Each
 * policy inside is held to POLICY_LIMITS.maxDocumentBytes on its own.
 */
export const MAX_POLICY_FILE_BYTES = 8 * 1024 * 1024;

/** A policy file over MAX_POLICY_FILE_BYTES. */
export class PolicyFileTooLargeError extends MeshletError {
  constructor(file: string) {
    super('POLICY_FILE_TOO_LARGE', `${file} is larger than ${MAX_POLICY_FILE_BYTES} bytes (8 MiB), the most policy check reads`);
  }
}

async function readBounded(stream: NodeJS.ReadableStream, file: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    if (size > MAX_POLICY_FILE_BYTES) {
      (stream as { destroy?: () => void }).destroy?.();
      throw new PolicyFileTooLargeError(file);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readInput(file: string, io: CommandIo): Promise<string> {
  if (file === '-') return readBounded(io.stdin, '<stdin>');
  try {
    return await readBounded(createReadStream(file), file);
  } catch (err) {
    if (err instanceof PolicyFileTooLargeError) throw err;
    throw new PolicyFileError(file, err as Error);
  }
}

/**
 * How a policy ConfigMap is told from any other: the label the ValidatingWebhookConfiguration's
 * objectSelector sends to /validate (deploy/policy/validating-webhook.yaml), and the name the
 * injector mounts (a test checks both against deploy/ and the injector).
 */
export const POLICY_CONFIGMAP_RULES: PolicyConfigMapRules = { label: ['meshlet.io/policy', 'true'], names: [DEFAULT_POLICY_CONFIGMAP] };

const checkHelp = `Usage: meshlet policy check FILE|DIR|-… [--output text|json]

Validates authorization policies: schema, SPIFFE IDs, duplicate and ambiguous routes,
paths that can never match, shadowed routes (warnings). Each argument is a file, a
directory (searched recursively for *.yaml, *.yml and *.json files, in sorted order;
names starting with "." and symlinked directories are left out), or "-" for stdin, e.g.
rendered manifests:

  kubectl kustomize deploy/examples | meshlet policy check -

Among the objects of the input, it checks:
  - policy documents: apiVersion ${POLICY_API_GROUP}/… (or kind AuthorizationPolicy
    without an apiVersion);
  - policy ConfigMaps: labelled ${POLICY_CONFIGMAP_RULES.label[0]}: "${POLICY_CONFIGMAP_RULES.label[1]}" (what the /validate webhook
    checks) or named ${POLICY_CONFIGMAP_RULES.names.join(', ')} (what the injector mounts): every *.yaml / *.yml data key;
    any other ConfigMap only for the *.yaml / *.yml keys whose value declares
    apiVersion ${POLICY_API_GROUP}/… (warned POLICY_CONFIGMAP_UNLABELLED: /validate never
    sees it);
  - items of a List;
and skips every other object (anything with an apiVersion and a kind), saying how many of
each kind. In a file named here or stdin, a document with no apiVersion or no kind is
checked as a policy (a policy missing its header still gets its errors, and a plain policy
file is read exactly as before); in a file found in a directory such a document (a
dashboard, a kustomize configuration) is skipped. A YAML document that does not parse is
always reported. An input with no policy at all is an error (POLICY_NONE_FOUND, exit 1).

Every error is printed with its location: FILE:LINE:COL, the YAML path and a stable code.
Warnings (exit 0) include POLICY_DENY_INSIDE_ALLOW: a route that lets fewer callers in than
a route or default enclosing it, which a case-insensitive or trailing-slash-tolerant app
router (Express by default, ASP.NET Core, Spring MVC before 6) can step around.

Output: one line per policy on stdout (errors and warnings on stderr); then, when objects
were skipped, a directory was searched or no policy was found, one summary line:
  checked 2 policies (1 ConfigMap key, 1 document); skipped 7 objects that are not policies: Deployment×3, …

Limits (docs/policy.md "Limits"): a policy document of at most 256 KiB, 100 YAML alias
expansions, 64 servers, 1,000 routes a server, 2,000 routes in all, 32 ports a server,
128 callers and 16 methods a route; a file of at most 8 MiB. Over a limit is an error
(POLICY_TOO_LARGE, POLICY_ALIAS_LIMIT, POLICY_LIMIT), never a crash.

Exit status: 0 when every policy is valid (warnings allowed), 1 when any is invalid or
unreadable or no policy was found, 2 on a usage error.

Flags:
  --output text|json   json: one object {"valid": bool, "policies": [{label, valid, errors, warnings}],
                       "checked": {"documents", "configMapKeys", "configMapsWithoutKey"},
                       "skipped": [{source, kind, apiVersion, name}]}`;

/** An input with no policy in it: most likely the wrong file, directory or kustomization. */
export class PolicyNoneFoundError extends MeshletError {
  constructor(label: string, skipped: number) {
    super(
      'POLICY_NONE_FOUND',
      `no policy found in ${label}${skipped > 0 ? ` (${skipped} object${skipped === 1 ? '' : 's'}, none of them a policy)` : ''}: a policy is a document with apiVersion ${POLICY_API_GROUP}/…, or a ConfigMap labelled ${POLICY_CONFIGMAP_RULES.label[0]}: "${POLICY_CONFIGMAP_RULES.label[1]}", named ${POLICY_CONFIGMAP_RULES.names.join(' or ')}, or holding one under a *.yaml / *.yml key (docs/policy.md#cli)`,
    );
  }
}

/** One file (or stdin) to read: from the command line, or found in a directory. */
interface CheckInput {
  label: string;
  read(): Promise<string>;
  /** Documents that are neither objects nor policies: checked as policies (named inputs) or skipped (found in a directory). */
  unknown: 'check' | 'skip';
}

/** The *.yaml / *.yml / *.json files under `dir`, relative, sorted; dot-names and symlinked directories left out. */
async function policyFilesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(rel === '' ? dir : join(dir, rel), { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const r = rel === '' ? e.name : join(rel, e.name);
      if (e.isDirectory()) await walk(r);
      else if (!/\.(ya?ml|json)$/.test(e.name)) continue;
      else if (e.isFile()) out.push(r);
      else if (e.isSymbolicLink()) {
        // A file behind a symlink is read (kubelet's ConfigMap volumes are made of them); a
        // dangling one is reported when it cannot be read; a directory is not followed.
        const target = await stat(join(dir, r)).catch(() => null);
        if (target === null || target.isFile()) out.push(r);
      }
    }
  };
  await walk('');
  return out.sort();
}

export async function checkInputs(arg: string, io: CommandIo): Promise<{ inputs: CheckInput[]; directory: boolean }> {
  if (arg === '-') return { inputs: [{ label: '<stdin>', read: () => readInput('-', io), unknown: 'check' }], directory: false };
  let isDir: boolean;
  try {
    isDir = (await stat(arg)).isDirectory();
  } catch (err) {
    throw new PolicyFileError(arg, err as Error);
  }
  if (!isDir) return { inputs: [{ label: arg, read: () => readInput(arg, io), unknown: 'check' }], directory: false };
  let files: string[];
  try {
    files = await policyFilesIn(arg);
  } catch (err) {
    throw new PolicyFileError(arg, err as Error);
  }
  return { inputs: files.map((f) => ({ label: join(arg, f), read: () => readInput(join(arg, f), io), unknown: 'skip' as const })), directory: true };
}

interface CheckReport {
  label: string;
  valid: boolean;
  errors: PolicyError[];
  warnings: PolicyError[];
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** "Deployment×3, Service×2, …": most frequent first, then by name; another group's AuthorizationPolicy names its apiVersion. */
function describeSkipped(skipped: readonly SkippedObject[]): string {
  const counts = new Map<string, number>();
  for (const s of skipped) {
    const key = s.kind === 'AuthorizationPolicy' && s.apiVersion !== null ? `AuthorizationPolicy (${s.apiVersion})` : s.kind;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([k, n]) => `${k}×${n}`).join(', ');
}

function summaryLine(checked: { documents: number; configMapKeys: number; configMapsWithoutKey: number }, skipped: readonly SkippedObject[], files: number | undefined): string {
  const n = checked.documents + checked.configMapKeys + checked.configMapsWithoutKey;
  const parts = [
    checked.configMapKeys ? plural(checked.configMapKeys, 'ConfigMap key', 'ConfigMap keys') : '',
    checked.documents ? plural(checked.documents, 'document', 'documents') : '',
    checked.configMapsWithoutKey ? plural(checked.configMapsWithoutKey, 'ConfigMap without a policy key', 'ConfigMaps without a policy key') : '',
  ].filter((p) => p !== '');
  const what = `checked ${plural(n, 'policy', 'policies')}${parts.length ? ` (${parts.join(', ')})` : ''}${files !== undefined ? ` in ${plural(files, 'file', 'files')}` : ''}`;
  const rest = skipped.length ? `skipped ${plural(skipped.length, 'object that is not a policy', 'objects that are not policies')}: ${describeSkipped(skipped)}` : 'skipped nothing';
  return `${what}; ${rest}`;
}

/**
 * Reads every FILE|DIR|- argument as `policy check` does (directories searched, ConfigMaps and
 * rendered manifests scanned) and hands each readable input's scan to `scanned`, in order; an
 * argument or file that cannot be read goes to `unreadable` (its coded error) and is skipped.
 * Shared by `policy check` and `policy netpol`.
 */
export async function scanPolicyInputs(
  args: readonly string[],
  io: CommandIo,
  on: { unreadable(label: string, err: MeshletError): void; scanned(found: ReturnType<typeof findPolicies>): void },
): Promise<{ files: number; searchedDirectory: boolean }> {
  let files = 0;
  let searchedDirectory = false;
  for (const arg of args) {
    let inputs: CheckInput[];
    try {
      const expanded = await checkInputs(arg, io);
      inputs = expanded.inputs;
      searchedDirectory ||= expanded.directory;
    } catch (err) {
      if (!(err instanceof PolicyFileError)) throw err;
      on.unreadable(arg, err);
      continue;
    }
    for (const input of inputs) {
      let text: string;
      try {
        text = await input.read();
      } catch (err) {
        if (!(err instanceof PolicyFileError) && !(err instanceof PolicyFileTooLargeError)) throw err;
        on.unreadable(input.label, err);
        continue;
      }
      files++;
      on.scanned(findPolicies(text, input.label, POLICY_CONFIGMAP_RULES, input.unknown));
    }
  }
  return { files, searchedDirectory };
}

const check: Command = {
  name: 'policy check',
  summary: 'validate policies (documents, ConfigMaps, rendered manifests, directories), every error with its location',
  help: checkHelp,
  async run(argv, io) {
    const { values, positionals } = parseFlags(argv, { output: { type: 'string', default: 'text' } }, true);
    if (values.output !== 'text' && values.output !== 'json') throw new UsageError('--output must be text or json');
    if (positionals.length === 0) throw new UsageError('at least one FILE, DIR or - is required');
    const reports: CheckReport[] = [];
    const skipped: SkippedObject[] = [];
    const checked = { documents: 0, configMapKeys: 0, configMapsWithoutKey: 0 };
    let failedToRead = false;
    const unreadable = (label: string, err: MeshletError) => {
      failedToRead = true;
      reports.push({ label, valid: false, errors: [{ severity: 'error', code: err.code, message: err.message, path: '', source: label }], warnings: [] });
    };
    const read = await scanPolicyInputs(positionals, io, {
      unreadable,
      scanned(found) {
        skipped.push(...found.skipped);
        for (const { label, result, from } of found.policies) {
          if (from === 'configmap-key') checked.configMapKeys++;
          else if (from === 'configmap') checked.configMapsWithoutKey++;
          else checked.documents++;
          reports.push(
            result.ok
              ? { label, valid: true, errors: [], warnings: result.warnings }
              : { label, valid: false, errors: result.errors.filter((e) => e.severity === 'error'), warnings: result.errors.filter((e) => e.severity === 'warning') },
          );
        }
      },
    });
    const { files, searchedDirectory } = read;
    const total = checked.documents + checked.configMapKeys + checked.configMapsWithoutKey;
    let noneFound: CheckReport | undefined;
    if (total === 0 && !failedToRead) {
      const label = positionals.map((p) => (p === '-' ? '<stdin>' : p)).join(', ');
      const err = new PolicyNoneFoundError(label, skipped.length);
      noneFound = { label, valid: false, errors: [{ severity: 'error', code: err.code, message: err.message, path: '', source: label }], warnings: [] };
      reports.push(noneFound);
    }
    const valid = reports.every((r) => r.valid);
    if (values.output === 'json') {
      io.stdout.write(JSON.stringify({ valid, policies: reports, checked, skipped }, null, 2) + '\n');
    } else {
      for (const r of reports) {
        for (const e of [...r.errors, ...r.warnings]) io.stderr.write(formatPolicyError(e) + '\n');
        if (r === noneFound) continue;
        const w = r.warnings.length ? ` (${r.warnings.length} warning${r.warnings.length > 1 ? 's' : ''})` : '';
        io.stdout.write(r.valid ? `${r.label}: valid${w}\n` : `${r.label}: INVALID, ${r.errors.length} error${r.errors.length > 1 ? 's' : ''}${w}\n`);
      }
      if (skipped.length > 0 || searchedDirectory || noneFound) io.stdout.write(summaryLine(checked, skipped, searchedDirectory ? files : undefined) + '\n');
    }
    return valid ? 0 : 1;
  },
};

const explainHelp = `Usage: meshlet policy explain FILE --from SPIFFE_ID|unauthenticated --port N
         (--method M --path P | --grpc SERVICE/METHOD) [--output text|json]
         [--server-account SA] [--namespace NS] [--labels k=v,…] [--trust-domain TD]
         [--mesh-default deny|all-authenticated|audit] [--key KEY]

Prints the decision the sidecar would make for one request, running the same compiled
policy and the same decide() the sidecar runs: allow or deny, the route that decided (or
null when a default decided), and why. FILE (or - for stdin) is read as \`policy check\` reads
it: a policy document, or the policy among other objects (a policy ConfigMap, rendered
manifests); --key picks one when there are several.

  --from            the verified caller SPIFFE ID, or "unauthenticated" for a plaintext
                    caller on a PERMISSIVE port
  --port            the inbound port of the workload
  --method, --path  an HTTP request; the path is normalized first exactly as the sidecar does
                    (a refused path is reported with the 400 the sidecar would answer)
  --grpc            a gRPC call, e.g. shop.v1.Orders/GetOrder (omit method/path and grpc for
                    a connection on an opaque tcp port; on an http or grpc port that is a
                    usage error, exit 2: those ports decide requests, not connections)
  --server-account, --namespace, --labels
                    the workload the policy is compiled for; when the policy has a single
                    server they default to what its selector asks for
  --trust-domain    trust domain for namespace callers (default cluster.local)
  --mesh-default    the mesh-level default (default: env MESHLET_DEFAULT_POLICY, else deny)
  --key             the ConfigMap key, when FILE holds more than one policy
  --output json     one object: {decision, route, reason, code, mode, wouldDeny, server, port,
                    protocol, path, pathMatching, matchedAs (the path as compared, when
                    pathMatching is not exact), match, from}

A HEAD request is decided as the GET the app will run (routes listing GET match it).

Both directions — "may X call Y?" — with a destination flag (FILE… may then be several: the
caller's policy and the server's, e.g. two ConfigMaps):

  meshlet policy explain FILE… --from SPIFFE_ID --to SPIFFE_ID --port N (--method M --path P | --grpc S/M)
  meshlet policy explain FILE… --from SPIFFE_ID (--to-host NAME | --to-service NAME[.NS] | --to-address IP) --port N

  --to              the destination's SPIFFE ID: a meshed workload; its server policy decides too
  --to-host         the name the app calls (HTTP Host, TLS SNI), e.g. api.stripe.com
  --to-service      the Kubernetes Service discovery resolves it to (NS default: the caller's)
  --to-address      the IP address dialled
  --to-port         the port the caller dials when it is not --port (a Service port in front of
                    the app port --port); default --port
  --from-labels, --to-labels
                    the pod labels of the caller / destination (for label selectors)
  --mesh-client-default
                    allow|audit|all-authenticated|deny (default: env MESHLET_DEFAULT_CLIENT_POLICY,
                    else allow)

The --to* flags combine (a meshed Service: --to ID --to-service orders.shop). The caller's
client policy decides the destination; with --to, the destination's server policy decides the
request too (--server-account and --labels do not apply: the workload comes from --to). Each
side's policy is the one among FILE… whose client (server) selects that workload; none: the
mesh default. The call is allowed only if both allow. --output json: {decision, from, to, port,
client: {decision, client, route, code, reason, mode, wouldDeny, policy}, server: {decision,
route, code, reason, mode, wouldDeny, server, port, protocol, path, policy} | null}.

Exit status: 0 when a decision was made (allow or deny), 1 when the policy is invalid, 2 on a
usage error.`;

function parseLabels(raw: string | undefined): Record<string, string> | undefined {
  if (raw === undefined) return undefined;
  const labels: Record<string, string> = {};
  for (const part of raw.split(',').filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new UsageError(`--labels: "${part}" is not key=value`);
    labels[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return labels;
}

function pickPolicy(found: ManifestPolicy[], key: string | undefined): ManifestPolicy {
  const candidates = key === undefined ? found : found.filter((f) => f.label.endsWith(`data[${key}]`));
  if (candidates.length === 0) throw new UsageError(`no policy under the key ${JSON.stringify(key)}`);
  if (candidates.length > 1) throw new UsageError(`the file holds ${candidates.length} policies (${candidates.map((c) => c.label).join('; ')}): pass --key`);
  return candidates[0]!;
}

function resolveSelf(policy: Policy, values: Record<string, unknown>): WorkloadSelf {
  const labels = parseLabels(values.labels as string | undefined);
  const sa = values['server-account'] as string | undefined;
  const ns = (values.namespace as string | undefined) ?? policy.metadata?.namespace ?? 'default';
  const td = values['trust-domain'] as string | undefined;
  const base = td ? { trustDomain: td } : {};
  if (sa !== undefined || labels !== undefined) return { ...base, namespace: ns, serviceAccount: sa ?? '', ...(labels ? { labels } : {}) };
  const servers = policy.spec.servers;
  if (servers.length !== 1) {
    throw new UsageError(`the policy has ${servers.length} servers (${servers.map((s) => s.name).join(', ')}): pass --server-account and/or --labels to say which workload`);
  }
  const sel = servers[0]!.selector;
  return { ...base, namespace: ns, serviceAccount: sel.serviceAccount ?? '', ...(sel.matchLabels ? { labels: { ...sel.matchLabels } } : {}) };
}

const explain: Command = {
  name: 'policy explain',
  summary: 'show the decision the sidecar would make for one request, and why',
  help: explainHelp,
  async run(argv, io) {
    const { values, positionals } = parseFlags(
      argv,
      {
        from: { type: 'string' },
        port: { type: 'string' },
        method: { type: 'string' },
        path: { type: 'string' },
        grpc: { type: 'string' },
        output: { type: 'string', default: 'text' },
        'server-account': { type: 'string' },
        namespace: { type: 'string' },
        labels: { type: 'string' },
        'trust-domain': { type: 'string' },
        'mesh-default': { type: 'string' },
        key: { type: 'string' },
        to: { type: 'string' },
        'to-host': { type: 'string' },
        'to-service': { type: 'string' },
        'to-address': { type: 'string' },
        'to-port': { type: 'string' },
        'to-labels': { type: 'string' },
        'from-labels': { type: 'string' },
        'mesh-client-default': { type: 'string' },
      },
      true,
    );
    const bothWays = values.to !== undefined || values['to-host'] !== undefined || values['to-service'] !== undefined || values['to-address'] !== undefined;
    if (bothWays) return explainCall(values, positionals, io);
    for (const only of ['to-port', 'to-labels', 'from-labels', 'mesh-client-default'] as const) {
      if (values[only] !== undefined) throw new UsageError(`--${only} asks about a call: pass --to, --to-host, --to-service or --to-address with it`);
    }
    if (positionals.length !== 1) throw new UsageError('exactly one FILE is required');
    if (values.output !== 'text' && values.output !== 'json') throw new UsageError('--output must be text or json');
    const fromRaw = requireFlag(values, 'from');
    let peer: string | null = null;
    if (fromRaw !== 'unauthenticated') {
      try {
        peer = parseSpiffeId(fromRaw).id;
      } catch (err) {
        throw new UsageError(`--from: ${(err as Error).message} (or pass "unauthenticated")`);
      }
    }
    const portRaw = requireFlag(values, 'port');
    const port = Number(portRaw);
    if (!/^\d+$/.test(portRaw) || port < 1 || port > 65535) throw new UsageError(`--port must be an integer from 1 to 65535 (got ${JSON.stringify(portRaw)})`);
    if (values.grpc !== undefined && (values.path !== undefined || values.method !== undefined)) throw new UsageError('pass either --grpc or --method/--path, not both');
    if ((values.path === undefined) !== (values.method === undefined)) throw new UsageError('--method and --path go together');
    let meshDefault;
    try {
      meshDefault = parseDefaultPolicy((values['mesh-default'] as string | undefined) ?? process.env.MESHLET_DEFAULT_POLICY, values['mesh-default'] !== undefined ? '--mesh-default' : 'MESHLET_DEFAULT_POLICY');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }

    const file = positionals[0]!;
    const label = file === '-' ? '<stdin>' : file;
    // The same reader as check: the policy is found among other objects (rendered manifests).
    const scan = findPolicies(await readInput(file, io), label, POLICY_CONFIGMAP_RULES, 'check');
    if (scan.policies.length === 0) throw new PolicyNoneFoundError(label, scan.skipped.length);
    const found = scan.policies;
    const chosen = pickPolicy(found, values.key);
    if (!chosen.result.ok) {
      for (const e of chosen.result.errors) io.stderr.write(formatPolicyError(e) + '\n');
      throw new PolicyInvalidError(chosen.label, chosen.result.errors);
    }
    const policy = chosen.result.policy;
    const compiled = compilePolicy(policy, { self: resolveSelf(policy, values), meshDefault });

    let method: string | undefined;
    let path: string | undefined;
    if (values.grpc !== undefined) {
      const m = /^([A-Za-z_][\w.]*)\/([A-Za-z_]\w*)$/.exec(values.grpc);
      if (!m) throw new UsageError(`--grpc must be SERVICE/METHOD, e.g. shop.v1.Orders/GetOrder (got ${JSON.stringify(values.grpc)})`);
      method = 'POST';
      path = `/${m[1]}/${m[2]}`;
    } else if (values.path !== undefined) {
      method = values.method!.toUpperCase();
      const n = normalizePath(values.path);
      if (!n.ok) {
        const out = { decision: 'deny', route: null, reason: n.reason, code: n.code, mode: 'enforce', wouldDeny: false, status: 400, server: compiled.server, port, path: values.path, from: fromRaw };
        write(io, values.output, out, `DENY (400 bad request)\n  reason: ${n.reason} [${n.code}]\n  path:   ${values.path}\n`);
        return 0;
      }
      path = n.path;
    }
    const protocol = compiled.ports.get(port)?.protocol ?? null;
    // An HTTP or gRPC port decides requests, never bare connections: without a request the
    // answer would be about something the sidecar never asks (issue 17).
    if (protocol !== null && protocol !== 'tcp' && path === undefined) {
      throw new UsageError(`port ${port} is a${protocol === 'http' ? 'n http' : ` ${protocol}`} port: pass --method and --path${protocol === 'grpc' ? ' or --grpc SERVICE/METHOD' : ' (or --grpc for a gRPC call)'}; only a tcp port is decided per connection`);
    }
    const d = decide(compiled, { peer, port, ...(method !== undefined ? { method } : {}), ...(path !== undefined ? { path } : {}) });
    const route = d.route === null ? undefined : compiled.routes.find((r) => r.name === d.route);
    const match = route ? describeRouteMatch(route.source) : null;
    // decide() compares the path as the server's mode says; show what it compared.
    const folded = compiled.pathMatching !== 'exact' && path !== undefined ? foldPath(path) : undefined;
    const out = { ...d, server: compiled.server, port, protocol, path: path ?? null, pathMatching: compiled.pathMatching, ...(folded !== undefined ? { matchedAs: folded } : {}), match, from: fromRaw };
    const text =
      `${d.decision.toUpperCase()}${d.wouldDeny ? ' (audit: would deny)' : ''}  ${d.route ? `route "${d.route}" (${match})` : 'no route: default applies'}\n` +
      `  reason: ${d.reason} [${d.code}]\n` +
      `  server: ${compiled.server ?? '(none: no server of the policy selects this workload)'}, port ${port}${protocol ? ` (${protocol})` : ' (not declared)'}${path ? `, path ${path}` : ''}\n` +
      (folded !== undefined ? `  paths:  ${compiled.pathMatching}: compared as ${folded}\n` : '') +
      `  from:   ${fromRaw}\n`;
    write(io, values.output, out, text);
    return 0;
  },
};

/** A workload's SPIFFE ID as --from / --to take it: spiffe://TD/ns/NS/sa/SA. */
function workloadOf(raw: string, flag: string): { id: string; trustDomain: string; namespace: string; serviceAccount: string } {
  let id: string;
  try {
    id = parseSpiffeId(raw).id;
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  if (!m) throw new UsageError(`${flag}: ${id} is not a workload identity (spiffe://TD/ns/NAMESPACE/sa/SERVICEACCOUNT)`);
  return { id, trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! };
}

function portFlag(raw: string, flag: string): number {
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port < 1 || port > 65535) throw new UsageError(`${flag} must be an integer from 1 to 65535 (got ${JSON.stringify(raw)})`);
  return port;
}

/** The one policy among `all` that selects the workload on this side; null: none does (the mesh default). */
function onePolicyFor(all: readonly { label: string; policy: Policy }[], selects: (p: Policy) => boolean, who: string): { label: string; policy: Policy } | null {
  const hits = all.filter((p) => selects(p.policy));
  if (hits.length > 1) throw new UsageError(`${who} is selected by ${hits.length} policies (${hits.map((h) => h.label).join('; ')}): pass only the policy its namespace mounts, or --key`);
  return hits[0] ?? null;
}

/**
 * `policy explain` both ways (issue 16): may the caller (--from) call the destination? Its client
 * policy decides the destination — the same compileClient().decide() its outbound sidecar runs —
 * and, for a meshed destination (--to), the destination's server policy decides the request, as
 * its inbound sidecar would. Allowed only if both allow.
 */
async function explainCall(values: Record<string, string | boolean | undefined>, positionals: string[], io: CommandIo): Promise<number> {
  const str = (name: string): string | undefined => values[name] as string | undefined;
  if (positionals.length === 0) throw new UsageError('at least one FILE is required');
  if (values.output !== 'text' && values.output !== 'json') throw new UsageError('--output must be text or json');
  for (const flag of ['server-account', 'namespace', 'labels'] as const) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} does not apply to a call: the workloads come from --from and --to (their labels: --from-labels, --to-labels)`);
  }
  const fromRaw = requireFlag(values, 'from');
  if (fromRaw === 'unauthenticated') throw new UsageError('--from: a call is asked for a meshed caller (its client policy runs in its sidecar); pass its SPIFFE ID');
  const from = workloadOf(fromRaw, '--from');
  const to = str('to') === undefined ? null : workloadOf(str('to')!, '--to');
  const port = portFlag(requireFlag(values, 'port'), '--port');
  const dialPort = str('to-port') === undefined ? port : portFlag(str('to-port')!, '--to-port');
  let host: string | null = null;
  if (str('to-host') !== undefined) {
    host = str('to-host')!.toLowerCase();
    const problem = host.includes('*') ? `"${host}" is a pattern: name one host` : hostPatternProblem(host);
    if (problem !== null) throw new UsageError(`--to-host: ${problem}`);
  }
  let service: { name: string; namespace: string } | null = null;
  if (str('to-service') !== undefined) {
    const m = /^([a-z0-9]([a-z0-9-]*[a-z0-9])?)(?:\.([a-z0-9]([a-z0-9-]*[a-z0-9])?))?$/.exec(str('to-service')!);
    if (!m) throw new UsageError(`--to-service must be NAME or NAME.NAMESPACE (got ${JSON.stringify(str('to-service'))})`);
    service = { name: m[1]!, namespace: m[3] ?? from.namespace };
  }
  const address = str('to-address') ?? null;
  if (address !== null && isIP(address) === 0) throw new UsageError(`--to-address must be an IPv4 or IPv6 address (got ${JSON.stringify(address)})`);
  if (values.grpc !== undefined && (values.path !== undefined || values.method !== undefined)) throw new UsageError('pass either --grpc or --method/--path, not both');
  if ((values.path === undefined) !== (values.method === undefined)) throw new UsageError('--method and --path go together');
  let meshDefault;
  let meshClientDefault: ClientMeshDefault;
  try {
    meshDefault = parseDefaultPolicy(str('mesh-default') ?? process.env.MESHLET_DEFAULT_POLICY, str('mesh-default') !== undefined ? '--mesh-default' : 'MESHLET_DEFAULT_POLICY');
    const name = str('mesh-client-default') !== undefined ? '--mesh-client-default' : 'MESHLET_DEFAULT_CLIENT_POLICY';
    const raw = str('mesh-client-default') ?? process.env.MESHLET_DEFAULT_CLIENT_POLICY ?? '';
    if (raw !== '' && !(CLIENT_MESH_DEFAULTS as readonly string[]).includes(raw)) throw new UsageError(`${name} must be one of ${CLIENT_MESH_DEFAULTS.join(', ')} (got ${JSON.stringify(raw)})`);
    meshClientDefault = raw === '' ? MESH_CLIENT_DEFAULT_POLICY : (raw as ClientMeshDefault);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }

  // Every policy of every FILE; each side takes the one that selects its workload.
  const all: { label: string; policy: Policy }[] = [];
  let skipped = 0;
  for (const file of positionals) {
    const label = file === '-' ? '<stdin>' : file;
    const scan = findPolicies(await readInput(file, io), label, POLICY_CONFIGMAP_RULES, 'check');
    skipped += scan.skipped.length;
    for (const found of scan.policies) {
      if (str('key') !== undefined && !found.label.endsWith(`data[${str('key')}]`)) continue;
      if (!found.result.ok) {
        for (const e of found.result.errors) io.stderr.write(formatPolicyError(e) + '\n');
        throw new PolicyInvalidError(found.label, found.result.errors);
      }
      all.push({ label: found.label, policy: found.result.policy });
    }
  }
  if (all.length === 0) throw new PolicyNoneFoundError(positionals.map((p) => (p === '-' ? '<stdin>' : p)).join(', '), skipped);

  // The caller's side: its client policy, as its outbound sidecar compiles it.
  const callerSelf: WorkloadSelf = { namespace: from.namespace, serviceAccount: from.serviceAccount, trustDomain: from.trustDomain, ...(str('from-labels') !== undefined ? { labels: parseLabels(str('from-labels'))! } : {}) };
  const clientPolicy = onePolicyFor(all, (p) => selectClient(p, callerSelf) !== null, `the caller ${from.id}`);
  const rules = compileClient(clientPolicy?.policy ?? null, callerSelf, meshClientDefault);
  const facts: DestinationFacts = { name: host, address, port: dialPort, meshed: to !== null, identities: to === null ? [] : [to.id], trustDomains: [], service };
  const clientDecision: ClientDecision =
    rules === null
      ? { decision: 'allow', client: null, route: null, code: 'no-client-policy', reason: `destination ${describeDestination(facts)}: no client of the policy selects this workload; the mesh client default is allow (outbound not restricted by policy)`, mode: 'enforce', wouldDeny: false }
      : rules.decide(facts);
  const client = { ...clientDecision, policy: clientPolicy?.label ?? null };

  // The destination's side, when it is a meshed workload: its server policy, as its inbound sidecar compiles it.
  let server: Record<string, unknown> | null = null;
  let serverText = '';
  if (to !== null) {
    const serverSelf: WorkloadSelf = { namespace: to.namespace, serviceAccount: to.serviceAccount, trustDomain: to.trustDomain, ...(str('to-labels') !== undefined ? { labels: parseLabels(str('to-labels'))! } : {}) };
    const serverPolicy = onePolicyFor(all, (p) => selectServer(p, serverSelf) !== null, `the destination ${to.id}`);
    const compiled = compilePolicy(serverPolicy?.policy ?? null, { self: serverSelf, meshDefault });
    const protocol = compiled.ports.get(port)?.protocol ?? null;
    let method: string | undefined;
    let path: string | undefined;
    if (values.grpc !== undefined) {
      const m = /^([A-Za-z_][\w.]*)\/([A-Za-z_]\w*)$/.exec(values.grpc as string);
      if (!m) throw new UsageError(`--grpc must be SERVICE/METHOD, e.g. shop.v1.Orders/GetOrder (got ${JSON.stringify(values.grpc)})`);
      method = 'POST';
      path = `/${m[1]}/${m[2]}`;
    } else if (values.path !== undefined) {
      method = (values.method as string).toUpperCase();
      const n = normalizePath(values.path as string);
      if (!n.ok) {
        server = { decision: 'deny', route: null, code: n.code, reason: n.reason, mode: 'enforce', wouldDeny: false, status: 400, server: compiled.server, port, protocol, path: values.path, policy: serverPolicy?.label ?? null };
        serverText = `  server: DENY (400 bad request)\n          reason: ${n.reason} [${n.code}]\n`;
      } else path = n.path;
    }
    if (server === null) {
      if (protocol !== null && protocol !== 'tcp' && path === undefined) {
        throw new UsageError(`port ${port} of ${to.id} is a${protocol === 'http' ? 'n http' : ` ${protocol}`} port: pass --method and --path${protocol === 'grpc' ? ' or --grpc SERVICE/METHOD' : ' (or --grpc for a gRPC call)'}; only a tcp port is decided per connection`);
      }
      const d = decide(compiled, { peer: from.id, port, ...(method !== undefined ? { method } : {}), ...(path !== undefined ? { path } : {}) });
      const route = d.route === null ? undefined : compiled.routes.find((r) => r.name === d.route);
      const match = route ? describeRouteMatch(route.source) : null;
      server = { ...d, server: compiled.server, port, protocol, path: path ?? null, match, policy: serverPolicy?.label ?? null };
      serverText =
        `  server: ${d.decision.toUpperCase()}${d.wouldDeny ? ' (audit: would deny)' : ''}  ${d.route ? `route "${d.route}" (${match})` : 'no route: default applies'}  (policy ${serverPolicy?.label ?? 'none: the mesh default'})\n` +
        `          reason: ${d.reason} [${d.code}]\n` +
        `          server: ${compiled.server ?? '(none: no server of the policy selects this workload)'}, port ${port}${protocol ? ` (${protocol})` : ' (not declared)'}${path ? `, path ${path}` : ''}\n`;
    }
  } else {
    serverText = '  server: (not a meshed workload: only the client side decides)\n';
  }
  const allowed = client.decision === 'allow' && (server === null || server.decision === 'allow');
  const toLabel = [to?.id, host, service ? `service ${service.name}.${service.namespace}` : undefined, address].filter((x) => x != null).join(' ');
  const out = { decision: allowed ? 'allow' : 'deny', from: from.id, to: { spiffeId: to?.id ?? null, host, service: service ? `${service.name}.${service.namespace}` : null, address, port: dialPort }, port, client, server };
  const text =
    `${allowed ? 'ALLOW' : 'DENY'}  ${from.id} -> ${toLabel}, port ${dialPort}${dialPort !== port ? ` (app port ${port})` : ''}\n` +
    `  client: ${client.decision.toUpperCase()}${client.wouldDeny ? ' (audit: would deny)' : ''}  ${client.route ? `destination "${client.route}" of client "${client.client}"` : client.client ? `no destination: client "${client.client}"'s default applies` : 'no client: the mesh client default applies'}  (policy ${client.policy ?? 'none'})\n` +
    `          reason: ${client.reason} [${client.code}]\n` +
    serverText;
  write(io, values.output as string, out, text);
  return 0;
}

function write(io: CommandIo, output: string | undefined, json: unknown, text: string): void {
  io.stdout.write(output === 'json' ? JSON.stringify(json) + '\n' : text);
}

/** Exposed for tests and the bench: compile a file's policy the way explain does. */
export type { CompiledPolicy };

export const commands: Command[] = [check, explain, ...netpolCommands];
