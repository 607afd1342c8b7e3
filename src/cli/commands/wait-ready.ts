import { http } from '../../common/net/node-http.ts';
import type { Command } from '../command.ts';
import { parseFlags } from '../command.ts';
import { MeshletError, UsageError } from '../../common/errors/meshlet-error.ts';
import { parseDuration } from '../../common/config/duration.ts';
import { SIDECAR_ENV } from '../../data-plane/sidecar/sidecar-env.ts';

export class WaitReadyTimeoutError extends MeshletError {
  constructor(message: string) {
    super('WAIT_READY_TIMEOUT', message);
  }
}

const DEFAULT_URL = `http://127.0.0.1:${SIDECAR_ENV.adminPort.default}/ready`;

/** One GET; resolves to the status code, or to the error text when nothing answered. */
function probe(url: string, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve(err.message));
    req.end();
  });
}

export const commands: Command[] = [
  {
    name: 'wait-ready',
    summary: "wait until a sidecar's /ready answers 200 (holds the app on old clusters)",
    help: `Usage: meshlet wait-ready [--url URL] [--timeout 120s] [--interval 250ms]

Polls the sidecar's readiness endpoint until it answers 200, then exits 0; exits 1 when the
timeout passes first. On clusters without native sidecars (< 1.29) the injector makes it the
postStart hook of the sidecar container, which comes first in the pod: kubelet starts the
app containers only after the hook returns, so the app never starts before the proxy.

Flags:
  --url URL          default ${DEFAULT_URL}
  --timeout DURATION give up after this long (default 120s)
  --interval DURATION time between attempts (default 250ms)`,
    async run(argv, io) {
      const { values } = parseFlags(argv, { url: { type: 'string' }, timeout: { type: 'string' }, interval: { type: 'string' } });
      const url = values.url ?? DEFAULT_URL;
      if (!/^http:\/\//.test(url)) throw new UsageError(`--url must be an http:// URL (got ${JSON.stringify(url)})`);
      let timeoutMs: number;
      let intervalMs: number;
      try {
        timeoutMs = parseDuration(values.timeout ?? '120s', '--timeout');
        intervalMs = parseDuration(values.interval ?? '250ms', '--interval');
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const deadline = Date.now() + timeoutMs;
      let last: number | string = 'no attempt';
      for (;;) {
        const left = deadline - Date.now();
        last = await probe(url, Math.max(1, Math.min(left, 2_000)));
        if (last === 200) {
          io.stderr.write(`meshlet wait-ready: ${url} is ready\n`);
          return 0;
        }
        if (Date.now() + intervalMs >= deadline) break;
        await new Promise((r) => setTimeout(r, intervalMs));
      }
      throw new WaitReadyTimeoutError(`${url} not ready after ${values.timeout ?? '120s'} (last: ${typeof last === 'number' ? `HTTP ${last}` : last})`);
    },
  },
];
