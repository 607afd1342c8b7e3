import type { Command } from '../command.ts';
import { parseFlags } from '../command.ts';
import { describeEnv, type EnvVar } from '../../common/config/env.ts';
import { readSidecarConfig, SIDECAR_ENV } from '../../data-plane/sidecar/sidecar-env.ts';
import { createLogger } from '../../common/log/logger.ts';
import { Sidecar } from '../../data-plane/sidecar/sidecar.ts';

const help = () => `Usage: meshlet sidecar

Runs the sidecar proxy of a pod: mTLS inbound listeners in front of the app's ports, the
outbound listener the app's traffic is redirected to (or uses as HTTP_PROXY), and the admin
port (/live /ready /metrics /connections /app-health/<container>/<kind> /shutdown).

Configured by environment variables (the injector writes them); every bad value is reported
at once and the process exits 1:
${describeEnv(Object.values(SIDECAR_ENV) as EnvVar<unknown>[])}

SIGTERM or SIGINT: stop accepting, let in-flight requests finish (MESHLET_DRAIN_TIMEOUT), exit 0.`;

export const commands: Command[] = [
  {
    name: 'sidecar',
    summary: 'run the sidecar proxy of a pod',
    get help() {
      return help();
    },
    async run(argv, io) {
      parseFlags(argv, {});
      const config = readSidecarConfig(process.env);
      const logger = createLogger({ name: 'sidecar', level: config.logLevel, base: { pod: config.podName, namespace: config.namespace } });
      const sidecar = new Sidecar(config, { logger });
      const onSignal = (signal: string) => () => void sidecar.stop(signal);
      const term = onSignal('SIGTERM');
      const int = onSignal('SIGINT');
      process.once('SIGTERM', term);
      process.once('SIGINT', int);
      try {
        const ports = await sidecar.start();
        io.stdout.write(`meshlet sidecar: ready (admin :${ports.admin}, outbound :${ports.outbound}, inbound ${ports.inbound.map((p) => `${p.appPort}->:${p.listenPort}`).join(' ') || 'none'})\n`);
      } catch (err) {
        logger.fatal({ err }, 'meshlet sidecar failed to start');
        await sidecar.stop('start failed').catch(() => undefined);
        logger.flush();
        throw err;
      }
      await sidecar.stopped;
      process.off('SIGTERM', term);
      process.off('SIGINT', int);
      logger.flush();
      return 0;
    },
  },
];
