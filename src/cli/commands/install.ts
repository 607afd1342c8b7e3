import { X509Certificate } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../../common/errors/meshlet-error.ts';
import { isNamespaceName } from '../../common/config/env.ts';
import { DurationError, formatDuration, parseDuration } from '../../common/config/duration.ts';
import { SpiffeIdError, validateTrustDomain } from '../../common/identity/spiffe-id.ts';
import { CA_FILES, CaError, createRootCa, DEFAULT_CA_TTL_MS, readCa, writeCa } from '../../control-plane/identity-service/ca.ts';
import { buildInstallObjects, loadBase, NAMES, toYaml, webhookService, type InstallCa } from '../../control-plane/install/manifests.ts';
import { createWebhookServingCert, DEFAULT_INJECTOR_CERT_TTL_MS, serviceDnsNames } from '../../control-plane/install/webhook-cert.ts';
import { parseFlags, type Command, type CommandIo } from '../command.ts';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

const help = `Usage: meshlet install [--ca-dir DIR | --ca-out DIR] [--trust-domain TD] [--namespace NS]... [--image REF] [--injector-cert-ttl 365d]

Prints the manifests of a whole meshlet installation on stdout, for \`kubectl apply -f -\`:
the control plane exactly as \`kubectl kustomize deploy/\` renders it, plus what
docs/deploy.md steps 1-3 make by hand:
  Secret meshlet-identity-ca     the mesh CA (ca.crt, ca.key, bundle.crt[, chain.crt])
  Secret meshlet-injector-tls    the injector's serving certificate, from a CA made for it
                                 alone; that CA is the caBundle of both webhook configurations
  ConfigMap meshlet-trust-bundle the mesh roots (bundle.crt), in each --namespace

  meshlet install --ca-dir ./mesh-ca --namespace shop | kubectl apply -f -

Every run makes a new injector certificate: after applying over a running installation,
restart the injector (kubectl -n meshlet-system rollout restart deploy/meshlet-injector).
Without --ca-dir every run also makes a new mesh CA, which replaces the one sidecars trust:
keep it with --ca-out, and use --ca-dir from then on. Private keys appear only in the Secrets.
What was generated is said on stderr. See docs/install.md.

Flags:
  --ca-dir DIR              the mesh CA made by \`meshlet ca init\` (a root, or an intermediate
                            whose root stays offline); its files go into the Secret verbatim
  --ca-out DIR              without --ca-dir: also write the generated root CA to DIR (as
                            \`meshlet ca init\` does; DIR must not hold a CA already)
  --trust-domain TD         trust domain of the generated CA (default ${DEFAULT_TRUST_DOMAIN}); with
                            --ca-dir optional, must equal the CA's. Set as MESHLET_TRUST_DOMAIN
                            in the control plane
  --namespace NS            a namespace that gets ConfigMap meshlet-trust-bundle (repeatable;
                            it must exist; label it meshlet.io/inject=enabled to mesh it)
  --image REF               the meshlet image for every container and for the injected sidecar
                            (MESHLET_INJECTOR_PROXY_IMAGE); default: the one in deploy/
  --injector-cert-ttl DUR   lifetime of the injector's serving certificate and its CA, e.g.
                            8760h, 90d (default ${formatDuration(DEFAULT_INJECTOR_CERT_TTL_MS)})
  -h, --help                this help`;

/** An image reference, loosely: [registry[:port]/]path[:tag][@digest], no spaces, no uppercase in the path. */
const IMAGE_REF = /^(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[\w][\w.-]{0,127})?(?:@[a-z0-9]+:[a-f0-9]{32,})?$/;

function trustDomainFlag(td: string): string {
  try {
    validateTrustDomain(td);
    return td;
  } catch (err) {
    if (!(err instanceof SpiffeIdError)) throw err;
    throw new UsageError(`--trust-domain ${JSON.stringify(td)} is not a valid trust domain: ${err.message.replace(`invalid SPIFFE ID ${JSON.stringify(td)}: `, '')}`);
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** The CA of a `meshlet ca init` directory, checked by readCa, its files taken byte for byte. */
async function caFromDir(dir: string): Promise<{ ca: InstallCa; notAfter: Date }> {
  const ca = await readCa(dir);
  const files: Record<string, string> = {};
  for (const name of [CA_FILES.cert, CA_FILES.key, CA_FILES.bundle, CA_FILES.chain]) {
    const path = join(dir, name);
    if (await exists(path)) files[name] = await readFile(path, 'utf8');
  }
  // A root written by hand may lack bundle.crt: it is its own bundle (as readCa says).
  files[CA_FILES.bundle] ??= ca.bundlePem;
  return { ca: { trustDomain: ca.trustDomain, files, bundlePem: files[CA_FILES.bundle]! }, notAfter: new X509Certificate(ca.certPem).validToDate };
}

async function run(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseFlags(argv, {
    'ca-dir': { type: 'string' },
    'ca-out': { type: 'string' },
    'trust-domain': { type: 'string' },
    namespace: { type: 'string', multiple: true },
    image: { type: 'string' },
    'injector-cert-ttl': { type: 'string' },
  });
  const caDir = values['ca-dir'];
  const caOut = values['ca-out'];
  if (caDir !== undefined && caOut !== undefined) throw new UsageError('--ca-dir and --ca-out exclude each other: --ca-out saves a CA generated when no --ca-dir is given');
  for (const [flag, v] of [['--ca-dir', caDir], ['--ca-out', caOut]] as const) if (v === '') throw new UsageError(`${flag} needs a value`);
  const td = values['trust-domain'] === undefined ? undefined : trustDomainFlag(values['trust-domain']);
  const namespaces = values.namespace ?? [];
  for (const ns of namespaces) {
    if (!isNamespaceName(ns)) throw new UsageError(`--namespace ${JSON.stringify(ns)} is not a namespace name (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)`);
  }
  const image = values.image;
  if (image !== undefined && !IMAGE_REF.test(image)) throw new UsageError(`--image ${JSON.stringify(image)} is not an image reference, e.g. ghcr.io/meshlet/meshlet:0.1.0 or registry.example:5000/meshlet@sha256:…`);
  let certTtlMs = DEFAULT_INJECTOR_CERT_TTL_MS;
  if (values['injector-cert-ttl'] !== undefined) {
    try {
      certTtlMs = parseDuration(values['injector-cert-ttl'], '--injector-cert-ttl');
    } catch (err) {
      if (err instanceof DurationError) throw new UsageError(err.message);
      throw err;
    }
  }

  const base = loadBase();
  const notes: string[] = [];
  let ca: InstallCa;
  let caSource: string;
  if (caDir !== undefined) {
    const read = await caFromDir(caDir);
    if (td !== undefined && td !== read.ca.trustDomain) {
      throw new UsageError(`--trust-domain ${td} differs from the trust domain of the CA in ${caDir} (${read.ca.trustDomain})`);
    }
    ca = read.ca;
    caSource = `from ${caDir}`;
    notes.push(`mesh CA from ${caDir} (trust domain ${ca.trustDomain}, valid until ${read.notAfter.toISOString()})`);
  } else {
    if (caOut !== undefined && (await exists(join(caOut, CA_FILES.key)))) {
      throw new CaError('CA_ALREADY_EXISTS', `${join(caOut, CA_FILES.key)} already exists; to install with that CA pass --ca-dir ${caOut}`);
    }
    const trustDomain = td ?? DEFAULT_TRUST_DOMAIN;
    const root = await createRootCa({ trustDomain, ttlMs: DEFAULT_CA_TTL_MS });
    const notAfter = new X509Certificate(root.certPem).validToDate.toISOString();
    ca = { trustDomain, files: { [CA_FILES.cert]: root.certPem, [CA_FILES.key]: root.keyPem, [CA_FILES.bundle]: root.bundlePem }, bundlePem: root.bundlePem };
    if (caOut !== undefined) {
      await writeCa(caOut, root);
      caSource = 'generated by meshlet install, saved with --ca-out';
      notes.push(`generated a new root CA for trust domain ${trustDomain} (valid until ${notAfter}), saved in ${caOut}; install with --ca-dir ${caOut} from now on`);
    } else {
      caSource = 'generated by meshlet install, not saved';
      notes.push(
        `generated a new root CA for trust domain ${trustDomain} (valid until ${notAfter}); it is not saved anywhere but in Secret ${NAMES.namespace}/${NAMES.caSecret} of this output: ` +
          `pass --ca-out DIR to keep it, then --ca-dir DIR on every later run (a new CA replaces the one running sidecars trust)`,
      );
    }
  }

  const svc = webhookService(base);
  const dnsNames = serviceDnsNames(svc.name, svc.namespace);
  const webhook = await createWebhookServingCert({ dnsNames, ttlMs: certTtlMs });
  notes.push(
    `new serving certificate for ${dnsNames[0]} in Secret ${NAMES.namespace}/${NAMES.injectorTlsSecret} (valid until ${webhook.notAfter.toISOString()}), its CA in both webhooks' caBundle; ` +
      `over a running installation, restart the injector after applying: kubectl -n ${NAMES.namespace} rollout restart deploy/${NAMES.injectorDeployment}`,
  );

  const objects = buildInstallObjects(base, { ca, webhook, image, trustBundleNamespaces: namespaces });
  const header = [
    'meshlet install: apply with `kubectl apply -f -` (docs/install.md).',
    `Mesh CA: trust domain ${ca.trustDomain}, ${caSource}.`,
    `Trust bundle ConfigMaps: ${namespaces.length > 0 ? [...new Set(namespaces)].join(', ') : 'none (--namespace NS adds one)'}.`,
  ];
  io.stdout.write(toYaml(objects, header));
  for (const n of notes) io.stderr.write(`meshlet install: ${n}\n`);
  return 0;
}

export const commands: Command[] = [{ name: 'install', summary: 'print the manifests of a whole installation, for kubectl apply -f -', help, run }];
