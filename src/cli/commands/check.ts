import { UsageError } from '../../common/errors/meshlet-error.ts';
import { DurationError, formatDuration, parseDuration } from '../../common/config/duration.ts';
import { CHECK_NAMES, DEFAULT_MIN_VALIDITY_MS, formatResult, runChecks, summary, type CheckResult } from '../../control-plane/install/checks.ts';
import { KubeConfigError, kubeClient, resolveTarget } from '../../control-plane/install/kube-client.ts';
import { parseFlags, type Command, type CommandIo } from '../command.ts';

const help = `Usage: meshlet check [--kubeconfig FILE] [--context NAME] [--namespace NS] [--min-validity 7d]

Verifies a running meshlet installation and prints one line per check: \`ok\`, \`FAIL\` (with a
\`fix:\` line saying what to do) or \`skip\` (a check it needs failed), then a summary.
Exit 0 when every check is ok, 1 otherwise, 2 on a usage error.

Checks, in order (docs/install.md says what each one means and how to fix it):
  ${CHECK_NAMES.slice(0, 6).join(', ')},
  ${CHECK_NAMES.slice(6).join(', ')}

The checks read the meshlet-system namespace (and the identity service's revocation-list
ConfigMap) and the webhook configurations. Two of them make
the API server call the webhooks for real, with server-side dry-run creates (nothing is
stored): a Pod, which must come back with the sidecar, and an invalid policy ConfigMap, which
/validate must refuse. They run in --namespace, or in a temporary namespace labelled
meshlet.io/inject=enabled that the check creates and deletes. Run it as a user who may do
that (e.g. a cluster admin).

Flags:
  --kubeconfig FILE      the kubeconfig (default: the first file of $KUBECONFIG, else
                         ~/.kube/config, else the pod's service account when in a cluster)
  --context NAME         a context of the kubeconfig (default: its current-context)
  --namespace NS         an existing namespace labelled meshlet.io/inject=enabled for the dry
                         runs, instead of a temporary one
  --min-validity DUR     a certificate (mesh CA, injector serving certificate, caBundle)
                         expiring sooner fails, e.g. 30d, 72h (default ${formatDuration(DEFAULT_MIN_VALIDITY_MS)})
  -h, --help             this help`;

async function run(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseFlags(argv, {
    kubeconfig: { type: 'string' },
    context: { type: 'string' },
    namespace: { type: 'string' },
    'min-validity': { type: 'string' },
  });
  let minValidityMs = DEFAULT_MIN_VALIDITY_MS;
  if (values['min-validity'] !== undefined) {
    try {
      minValidityMs = parseDuration(values['min-validity'], '--min-validity');
    } catch (err) {
      if (err instanceof DurationError) throw new UsageError(err.message);
      throw err;
    }
  }
  for (const flag of ['kubeconfig', 'context', 'namespace'] as const) {
    if (values[flag] === '') throw new UsageError(`--${flag} needs a value`);
  }

  const print = (r: CheckResult) => io.stdout.write(`${formatResult(r)}\n`);
  let target;
  try {
    target = await resolveTarget({ kubeconfig: values.kubeconfig, context: values.context });
  } catch (err) {
    if (!(err instanceof KubeConfigError)) throw err;
    // No cluster to talk to: the first check fails, the others cannot run.
    const results: CheckResult[] = [
      { name: 'api-server', status: 'FAIL', message: `${err.code}: ${err.message}`, fix: 'fix the kubeconfig, or choose another: --kubeconfig FILE, $KUBECONFIG, ~/.kube/config, --context NAME' },
      ...CHECK_NAMES.slice(1).map((name): CheckResult => ({ name, status: 'skip', message: 'needs api-server' })),
    ];
    results.forEach(print);
    io.stdout.write(`${summary(results)}\n`);
    return 1;
  }
  const results = await runChecks(kubeClient(target), { minValidityMs, namespace: values.namespace }, print);
  io.stdout.write(`${summary(results)}\n`);
  return results.every((r) => r.status === 'ok') ? 0 : 1;
}

export const commands: Command[] = [{ name: 'check', summary: 'verify a running installation: webhooks, certificates, identity service', help, run }];
