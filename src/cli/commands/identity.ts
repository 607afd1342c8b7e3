import { pino, type DestinationStream } from 'pino';
import { describeEnv } from '../../common/config/env.ts';
import { IDENTITY_ENV, readIdentityConfig } from '../../control-plane/identity-service/config.ts';
import { startIdentityProcess } from '../../control-plane/identity-service/process.ts';
import { parseFlags, requireFlag, type Command, type CommandIo } from '../command.ts';
import { UsageError } from '../../common/errors/meshlet-error.ts';
import { RevocationListError } from '../../data-plane/identity/revocation/errors.ts';
import { checkRevocableId, MAX_REASON_LENGTH } from '../../data-plane/identity/revocation/revocation-list.ts';
import { editListFile, REVOCATION_CONFIGMAP_KEY, REVOCATION_CONFIGMAP_NAME, revocationConfigMap, withoutRevoked, withRevoked } from '../../data-plane/identity/revocation/revocation-list-edit.ts';

/** How long in-flight Certify calls may take to finish after SIGTERM. */
const SHUTDOWN_GRACE_MS = 10_000;

const help = `Usage: meshlet identity
       meshlet identity revoke SPIFFE_ID --list FILE [--reason TEXT]   (see meshlet identity revoke --help)
       meshlet identity unrevoke SPIFFE_ID --list FILE

Runs the in-cluster mesh CA: the gRPC service meshlet.identity.v1.Identity/Certify over TLS.
A sidecar sends a CSR (its ECDSA P-256 key, generated in memory) and its projected
ServiceAccount token; the service authenticates the token (TokenReview and/or the issuer's
JWKS), derives spiffe://<trust domain>/ns/<namespace>/sa/<serviceaccount> from what the
token proves (never from the CSR) and returns the SVID chain and the trust bundle.

Configured by environment variables (all validated at start; every bad one is reported):
${describeEnv(Object.values(IDENTITY_ENV))}

Logs are JSON lines on stdout. SIGTERM or SIGINT: stop accepting, finish in-flight calls
(up to ${SHUTDOWN_GRACE_MS / 1000} s), exit 0. See docs/identity-service.md.`;

const revokeHelp = `Usage: meshlet identity revoke SPIFFE_ID --list FILE [--reason TEXT] [--configmap NAMESPACE]...

Revokes a workload identity: adds SPIFFE_ID to the revocation list FILE (a RevocationList JSON
document; created when absent). Idempotent: an ID already listed keeps its entry. The file is
replaced atomically (a temporary file renamed over it), so a sidecar or identity service
watching it never reads half a list; a malformed FILE is refused and left as it is.

Sidecars with MESHLET_REVOCATION_LIST refuse every SVID of that ID (whatever its serial) on
every handshake and close the connections already open to it, within about a second of
seeing the new list; the identity service with MESHLET_IDENTITY_REVOCATION_LIST issues it
nothing. Undo with \`meshlet identity unrevoke\`.

Flags:
  --list FILE            the revocation list to edit (required)
  --reason TEXT          why, kept in the entry (at most ${MAX_REASON_LENGTH} characters)
  --configmap NAMESPACE  do not write FILE: print the ConfigMap ${REVOCATION_CONFIGMAP_NAME} (key
                         ${REVOCATION_CONFIGMAP_KEY}) of NAMESPACE holding FILE's list with this change,
                         for kubectl apply -f -; repeat it for several namespaces

Exit status: 0 done (or already revoked), 1 FILE unreadable or malformed, 2 usage error
(an invalid SPIFFE ID included). See docs/revocation.md.`;

const unrevokeHelp = `Usage: meshlet identity unrevoke SPIFFE_ID --list FILE [--configmap NAMESPACE]...

Re-admits a revoked identity: removes SPIFFE_ID from the revocation list FILE (atomic
replace, as revoke). Idempotent: an ID not listed changes nothing. Sidecars accept its SVIDs
again from their next look at the list (about a second).

Flags:
  --list FILE            the revocation list to edit (required)
  --configmap NAMESPACE  do not write FILE: print the ConfigMap ${REVOCATION_CONFIGMAP_NAME} of NAMESPACE with
                         this change, for kubectl apply -f -; repeatable

Exit status: 0 done (or was not revoked), 1 FILE unreadable or malformed, 2 usage error.
See docs/revocation.md.`;

/** A Kubernetes namespace name (an RFC 1123 DNS label). */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The shared body of revoke and unrevoke: parse, validate, edit the file or print ConfigMaps. */
async function editRevocations(argv: string[], io: CommandIo, action: 'revoke' | 'unrevoke'): Promise<number> {
  const { values, positionals } = parseFlags(
    argv,
    { list: { type: 'string' }, configmap: { type: 'string', multiple: true }, ...(action === 'revoke' ? { reason: { type: 'string' } } : {}) },
    true,
  );
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'missing SPIFFE_ID' : `takes one SPIFFE_ID, got ${positionals.length}: ${positionals.join(' ')}`);
  let spiffeId: string;
  try {
    spiffeId = checkRevocableId(positionals[0]!, 'SPIFFE_ID');
  } catch (err) {
    throw new UsageError((err as RevocationListError).message.replace(/^SPIFFE_ID: /, ''));
  }
  const list = requireFlag(values, 'list');
  const reason = (values as { reason?: string }).reason;
  if (reason !== undefined && (reason === '' || reason.length > MAX_REASON_LENGTH)) throw new UsageError(`--reason must be 1 to ${MAX_REASON_LENGTH} characters`);
  const namespaces = (values.configmap ?? []) as string[];
  for (const ns of namespaces) if (!NAMESPACE.test(ns)) throw new UsageError(`--configmap ${JSON.stringify(ns)}: not a namespace name (lowercase a-z 0-9 -, at most 63)`);
  const write = namespaces.length === 0;
  const edit = await editListFile(list, (entries) => (action === 'revoke' ? withRevoked(entries, spiffeId, reason) : withoutRevoked(entries, spiffeId)), write);
  if (!write) {
    io.stdout.write(namespaces.map((ns) => revocationConfigMap(ns, edit.content)).join('---\n'));
    return 0;
  }
  const what = action === 'revoke' ? (edit.changed ? `revoked ${spiffeId}` : `${spiffeId} was already revoked; unchanged`) : edit.changed ? `unrevoked ${spiffeId}` : `${spiffeId} was not revoked; unchanged`;
  io.stdout.write(`${what} in ${list} (${edit.size} revoked)\n`);
  return 0;
}

export const commands: Command[] = [
  {
    name: 'identity',
    summary: 'run the mesh CA service (Certify gRPC)',
    help,
    async run(argv, io) {
      parseFlags(argv, {});
      const config = readIdentityConfig(process.env);
      const logger = pino({ level: config.logLevel, base: { component: 'meshlet-identity' } }, io.stdout as unknown as DestinationStream);
      const running = await startIdentityProcess(config, logger);
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      logger.info({ event: 'shutdown', signal }, 'shutting down');
      await running.close(SHUTDOWN_GRACE_MS);
      logger.info({ event: 'stopped' }, 'stopped');
      return 0;
    },
  },
  {
    name: 'identity revoke',
    summary: 'add a SPIFFE ID to a revocation list file (or print it as a ConfigMap)',
    help: revokeHelp,
    run: (argv, io) => editRevocations(argv, io, 'revoke'),
  },
  {
    name: 'identity unrevoke',
    summary: 'remove a SPIFFE ID from a revocation list file (or print it as a ConfigMap)',
    help: unrevokeHelp,
    run: (argv, io) => editRevocations(argv, io, 'unrevoke'),
  },
];
