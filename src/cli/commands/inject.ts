import { readFile } from 'node:fs/promises';
import { parseAllDocuments, stringify } from 'yaml';
import type { Command, CommandIo } from '../command.ts';
import { parseFlags, readWithFlags } from '../command.ts';
import { MeshletError, UsageError } from '../../common/errors/meshlet-error.ts';
import { describeEnv } from '../../common/config/env.ts';
import { INJECTION_ENV, readInjectionSettings, type InjectionSettings } from '../../control-plane/injector/patch/index.ts';
import { injectManifest } from '../../control-plane/injector/workloads.ts';

/** Input YAML that cannot be parsed: nothing is printed, so a pipe into kubectl applies nothing. */
export class InjectInputError extends MeshletError {
  constructor(message: string) {
    super('INJECT_INPUT_INVALID', message);
  }
}

const help = `Usage: meshlet inject [FILE|-] [flags]

Injects the meshlet sidecar into Kubernetes manifests offline, exactly as the admission
webhook would, and prints the manifests on stdout (same order, multi-document YAML):

  meshlet inject app.yaml | kubectl apply -f -

Pods and the pod templates of Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController, Job and CronJob are injected; List items are visited; every other
kind passes through unchanged. A pod template is injected unless it opts out — annotation
meshlet.io/inject: disabled (the webhook's own check) or label meshlet.io/inject: disabled
on the template (the webhook's objectSelector never sends such pods) — the namespace label
the webhook relies on is assumed. Already injected, hostNetwork and excluded-namespace
templates are left as they are. What happened to each template is reported on stderr, with
warnings about what will not work once injected (e.g. a probe that cannot be moved to the
sidecar's admin port).

Reads FILE, or stdin when FILE is - or absent.

Flags:
  --namespace NS          namespace assumed for manifests without metadata.namespace (default: default)
  --image IMAGE           sidecar image (env ${INJECTION_ENV.image.name}, default ${INJECTION_ENV.image.default})
  --native-sidecar BOOL   true: native sidecar (Kubernetes >= 1.29); false: regular first container
  --trust-domain TD       trust domain written into the sidecar
  --ca-address HOST:PORT  identity service address written into the sidecar

Settings not given as flags come from the environment, as for the webhook:
${describeEnv(Object.values(INJECTION_ENV))}

Exit status: 0 printed; 1 a manifest is refused (the webhook would deny the pod: a bad
annotation, a container that could leave interception such as runAsUser 2020, an annotation
that ${INJECTION_ENV.allowedPodOverrides.name} forbids), with the webhook's message, or the
input is not YAML; 2 bad flags.`;

async function readInput(file: string | undefined, io: CommandIo): Promise<string> {
  if (file !== undefined && file !== '-') {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new InjectInputError(`cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

function settingsFrom(values: Record<string, string | boolean | undefined>): InjectionSettings {
  // Flags override the environment; both go through the same validation.
  // A bad flag value is a usage error (exit 2) naming the flag; a bad variable stays exit 1.
  const flagToEnv = { image: INJECTION_ENV.image.name, 'native-sidecar': INJECTION_ENV.nativeSidecar.name, 'trust-domain': INJECTION_ENV.trustDomain.name, 'ca-address': INJECTION_ENV.caAddress.name } as const;
  return readWithFlags(values, flagToEnv, readInjectionSettings);
}

export const commands: Command[] = [
  {
    name: 'inject',
    summary: 'inject the sidecar into manifests offline (same patch as the webhook)',
    help,
    async run(argv, io) {
      const { values, positionals } = parseFlags(
        argv,
        { namespace: { type: 'string' }, image: { type: 'string' }, 'native-sidecar': { type: 'string' }, 'trust-domain': { type: 'string' }, 'ca-address': { type: 'string' } },
        true,
      );
      if (positionals.length > 1) throw new UsageError(`expected at most one FILE, got ${positionals.length}: ${positionals.join(' ')}`);
      const settings = settingsFrom(values);
      const namespace = values.namespace ?? 'default';
      const text = await readInput(positionals[0], io);

      const docs = parseAllDocuments(text);
      if (!Array.isArray(docs)) return emit(io, ''); // an empty stream
      const out: string[] = [];
      for (const [i, doc] of docs.entries()) {
        if (doc.errors.length > 0) throw new InjectInputError(`document ${i + 1}: ${doc.errors[0]!.message}`);
        const input = doc.toJS() as unknown;
        const { manifest, notes } = injectManifest(input, namespace, settings);
        for (const n of notes) io.stderr.write(`meshlet inject: ${n}\n`);
        // Untouched documents are printed as they were written, comments included; the
        // separators are ours, so a document's own `---` marker is dropped.
        if (doc.directives) doc.directives.docStart = null;
        out.push(manifest === input ? doc.toString({ lineWidth: 0 }) : stringify(manifest, { lineWidth: 0 }));
      }
      return emit(io, out.map((d) => (d.endsWith('\n') ? d : d + '\n')).join('---\n'));
    },
  },
];

function emit(io: CommandIo, text: string): number {
  io.stdout.write(text);
  return 0;
}
