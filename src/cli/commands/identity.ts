import { pino, type DestinationStream } from 'pino';
import { describeEnv } from '../../common/config/env.ts';
import { IDENTITY_ENV, readIdentityConfig } from '../../control-plane/identity-service/config.ts';
import { startIdentityProcess } from '../../control-plane/identity-service/process.ts';
import { parseFlags, type Command } from '../command.ts';

/** How long in-flight Certify calls may take to finish after SIGTERM. */
const SHUTDOWN_GRACE_MS = 10_000;

const help = `Usage: meshlet identity

Runs the in-cluster mesh CA: the gRPC service meshlet.identity.v1.Identity/Certify over TLS.
A sidecar sends a CSR (its ECDSA P-256 key, generated in memory) and its projected
ServiceAccount token; the service authenticates the token (TokenReview and/or the issuer's
JWKS), derives spiffe://<trust domain>/ns/<namespace>/sa/<serviceaccount> from what the
token proves (never from the CSR) and returns the SVID chain and the trust bundle.

Configured by environment variables (all validated at start; every bad one is reported):
${describeEnv(Object.values(IDENTITY_ENV))}

Logs are JSON lines on stdout. SIGTERM or SIGINT: stop accepting, finish in-flight calls
(up to ${SHUTDOWN_GRACE_MS / 1000} s), exit 0. See docs/identity-service.md.`;

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
];
