import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../../common/errors/meshlet-error.ts';
import { parseFlags, requireFlag, type Command, type CommandIo } from '../command.ts';
import { DurationError, formatDuration, parseDuration } from '../../common/config/duration.ts';
import {
  CA_FILES,
  CaError,
  createIntermediateCa,
  createRootCa,
  DEFAULT_CA_TTL_MS,
  DEFAULT_SVID_TTL_MS,
  issueSvid,
  readCa,
  readCaTrustBundle,
  SVID_FILES,
  SVID_FILES_SOURCE_NAMES,
  writeCa,
  writeSvid,
} from '../../control-plane/identity-service/ca.ts';
import { parseSpiffeId, SpiffeIdError, validateTrustDomain } from '../../common/identity/spiffe-id.ts';
import { toSpiffeBundle } from '../../data-plane/identity/trust-bundle.ts';

function ttlFlag(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  try {
    return parseDuration(String(value), '--ttl');
  } catch (err) {
    if (err instanceof DurationError) throw new UsageError(err.message);
    throw err;
  }
}

/** Malformed flag values are usage errors (exit 2), with the parser's precise reason. */
function asUsage<T>(fn: () => T, flag: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SpiffeIdError) throw new UsageError(`${flag}: ${err.message}`);
    throw err;
  }
}

/**
 * --trust-domain is a trust domain, not a SPIFFE ID: say so, with the validator's reason
 * (e.g. `--trust-domain "bad domain!" is not a valid trust domain: it has the character " "; …`).
 */
function checkTrustDomainFlag(td: string): void {
  if (td.startsWith('spiffe://')) {
    throw new UsageError(`--trust-domain ${JSON.stringify(td)} is not a valid trust domain: give the trust domain alone, e.g. ${td.slice('spiffe://'.length).split('/')[0] || 'cluster.local'}, not a SPIFFE ID`);
  }
  try {
    validateTrustDomain(td);
  } catch (err) {
    if (!(err instanceof SpiffeIdError)) throw err;
    const why = err.message.replace(`invalid SPIFFE ID ${JSON.stringify(td)}: `, '').replace(/^trust domain /, 'it ');
    throw new UsageError(`--trust-domain ${JSON.stringify(td)} is not a valid trust domain: ${why}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

const initHelp = `Usage: meshlet ca init --trust-domain TD --out DIR [--ttl 8760h] [--intermediate-of PARENT_DIR] [--force]

Creates a CA for the mesh: an ECDSA P-256 key and a self-signed root certificate, or, with
--intermediate-of, an intermediate CA signed by the CA in PARENT_DIR (keep the root offline and
give the cluster only the intermediate).

Writes:
  DIR/ca.crt      this CA's certificate (PEM)
  DIR/ca.key      this CA's private key (PKCS#8 PEM, mode 0600)
  DIR/bundle.crt  the trust domain's root certificate: what every workload trusts
  DIR/chain.crt   intermediate only: this CA's certificate and its parents below the root,
                  appended to every SVID it issues

Flags:
  --trust-domain TD        the SPIFFE trust domain, e.g. cluster.local (with --intermediate-of:
                           optional, must equal the parent's)
  --out DIR                where to write (created if missing, mode 0700)
  --ttl DURATION           lifetime, e.g. 8760h, 365d, 90d (default 8760h); an intermediate
                           never outlives its parent
  --intermediate-of DIR    sign an intermediate CA with the CA in DIR instead of a root
  --force                  overwrite an existing CA in DIR (its key is lost)
  -h, --help               this help`;

const issueHelp = `Usage: meshlet ca issue --ca DIR --spiffe-id ID --out DIR [--ttl 24h] [--force]

Issues an X.509-SVID: generates an ECDSA P-256 key and signs a certificate for the SPIFFE ID
with the CA in --ca (made by \`meshlet ca init\`). The ID must be in the CA's trust domain.

Writes:
  DIR/svid.crt    the SVID, leaf first, then the CA's intermediates (PEM)
  DIR/svid.key    its private key (PKCS#8 PEM, mode 0600)
  DIR/bundle.crt  the trust domain's root certificate(s)
  DIR/tls.crt, DIR/tls.key, DIR/ca.crt
                  the same three, under the names the files identity source reads by
                  default: point MESHLET_SVID_DIR at DIR

Flags:
  --ca DIR          the CA directory (ca.crt, ca.key, and for an intermediate chain.crt, bundle.crt)
  --spiffe-id ID    e.g. spiffe://cluster.local/ns/default/sa/web
  --out DIR         where to write (created if missing; not a CA's directory)
  --ttl DURATION    lifetime, e.g. 24h, 90m, 7d (default 24h); never beyond the CA's expiry
  --force           overwrite an existing SVID in DIR
  -h, --help        this help`;

async function runInit(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseFlags(argv, {
    'trust-domain': { type: 'string' },
    out: { type: 'string' },
    ttl: { type: 'string' },
    'intermediate-of': { type: 'string' },
    force: { type: 'boolean' },
  });
  const out = requireFlag(values, 'out');
  const ttlMs = ttlFlag(values.ttl, DEFAULT_CA_TTL_MS);
  const parentDir = values['intermediate-of'];
  const td = values['trust-domain'];
  if (parentDir === undefined && td === undefined) throw new UsageError('missing required flag --trust-domain');
  if (td !== undefined) checkTrustDomainFlag(td);
  if (!values.force && (await exists(join(out, CA_FILES.key)))) {
    throw new CaError('CA_ALREADY_EXISTS', `${join(out, CA_FILES.key)} already exists; pass --force to replace that CA (its key is lost)`);
  }

  let ca;
  if (parentDir !== undefined) {
    const parent = await readCa(parentDir);
    if (td !== undefined && td !== parent.trustDomain) {
      throw new UsageError(`--trust-domain ${td} differs from the trust domain of the CA in ${parentDir} (${parent.trustDomain})`);
    }
    ca = await createIntermediateCa(parent, { ttlMs });
  } else {
    ca = await createRootCa({ trustDomain: td!, ttlMs });
  }
  await writeCa(out, ca);
  const files = [CA_FILES.cert, CA_FILES.key, CA_FILES.bundle, ...(ca.chainPem ? [CA_FILES.chain] : [])].join(', ');
  io.stdout.write(
    `created ${parentDir !== undefined ? 'intermediate' : 'root'} CA for trust domain ${ca.trustDomain} ` +
      `(lifetime ${formatDuration(ttlMs)}${parentDir !== undefined ? ', no longer than the parent\'s' : ''}) in ${out}: ${files}\n`,
  );
  return 0;
}

async function runIssue(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseFlags(argv, {
    ca: { type: 'string' },
    'spiffe-id': { type: 'string' },
    out: { type: 'string' },
    ttl: { type: 'string' },
    force: { type: 'boolean' },
  });
  const caDir = requireFlag(values, 'ca');
  const spiffeId = requireFlag(values, 'spiffe-id');
  const out = requireFlag(values, 'out');
  const ttlMs = ttlFlag(values.ttl, DEFAULT_SVID_TTL_MS);
  asUsage(() => parseSpiffeId(spiffeId), '--spiffe-id');
  if (!values.force && (await exists(join(out, SVID_FILES.key)))) {
    throw new CaError('CA_ALREADY_EXISTS', `${join(out, SVID_FILES.key)} already exists; pass --force to replace it`);
  }
  const ca = await readCa(caDir);
  const svid = await issueSvid(ca, { spiffeId, ttlMs });
  await writeSvid(out, svid);
  io.stdout.write(
    `issued ${svid.spiffeId.id}, valid ${svid.notBefore.toISOString()} to ${svid.notAfter.toISOString()}, in ${out}: ` +
      `${SVID_FILES.cert}, ${SVID_FILES.key}, ${SVID_FILES.bundle} (and the same as ` +
      `${SVID_FILES_SOURCE_NAMES.cert}, ${SVID_FILES_SOURCE_NAMES.key}, ${SVID_FILES_SOURCE_NAMES.bundle} for MESHLET_SVID_DIR)\n`,
  );
  return 0;
}

const bundleHelp = `Usage: meshlet ca bundle --ca DIR [--sequence N] [--refresh-hint DURATION]

Prints the CA's trust bundle in the SPIFFE bundle format (a JWK Set, one "x509-svid" key per
root of DIR/bundle.crt), for another mesh to federate with this one: it stores the output
under the key <trust domain>.json of its meshlet-federation ConfigMap
(MESHLET_FEDERATION_BUNDLES, docs/identity-sources.md#federation). Reads only the public
files (ca.crt for the trust domain, bundle.crt); never the key. The JSON goes to stdout; one
line on stderr names the trust domain and the key to store it under.

Flags:
  --ca DIR                 the CA directory (as written by meshlet ca init)
  --sequence N             spiffe_sequence (a non-negative integer); default: the newest
                           root's notBefore in Unix seconds, so a bundle with a new root
                           always has a higher sequence (the receiving side refuses a lower
                           one as a rollback)
  --refresh-hint DURATION  spiffe_refresh_hint, e.g. 5m (whole seconds); default: none
  -h, --help               this help`;

async function runBundle(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseFlags(argv, {
    ca: { type: 'string' },
    sequence: { type: 'string' },
    'refresh-hint': { type: 'string' },
  });
  const caDir = requireFlag(values, 'ca');
  let sequence: number | undefined;
  if (values.sequence !== undefined) {
    const text = String(values.sequence);
    sequence = /^[0-9]{1,15}$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(sequence)) throw new UsageError(`--sequence ${JSON.stringify(text)}: must be a non-negative integer`);
  }
  let refreshHintSeconds: number | undefined;
  if (values['refresh-hint'] !== undefined) {
    let ms: number;
    try {
      ms = parseDuration(String(values['refresh-hint']), '--refresh-hint');
    } catch (err) {
      if (err instanceof DurationError) throw new UsageError(err.message);
      throw err;
    }
    if (ms < 1000 || ms % 1000 !== 0) throw new UsageError(`--refresh-hint ${values['refresh-hint']}: must be a whole number of seconds, at least 1s`);
    refreshHintSeconds = ms / 1000;
  }
  const { trustDomain, bundlePem, roots } = await readCaTrustBundle(caDir);
  const newest = Math.max(...roots.map((r) => Math.floor(new Date(r.validFrom).getTime() / 1000)));
  const doc = toSpiffeBundle(bundlePem, { sequence: sequence ?? newest, ...(refreshHintSeconds === undefined ? {} : { refreshHintSeconds }) });
  io.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  io.stderr.write(`SPIFFE bundle of trust domain ${trustDomain} (${roots.length} root${roots.length === 1 ? '' : 's'}): store it as key ${trustDomain}.json of the other mesh's meshlet-federation ConfigMap\n`);
  return 0;
}

export const commands: Command[] = [
  { name: 'ca init', summary: 'create a root or intermediate CA (ca.crt, ca.key, bundle.crt)', help: initHelp, run: runInit },
  { name: 'ca issue', summary: 'issue an X.509-SVID (svid.crt, svid.key, bundle.crt)', help: issueHelp, run: runIssue },
  { name: 'ca bundle', summary: "print the CA's roots as a SPIFFE bundle (for another mesh's federation)", help: bundleHelp, run: runBundle },
];
