import type * as http2 from 'node:http2';
import type { ProxyError } from '../http/errors.ts';
import type { NextHop } from '../http/forward-request.ts';
import type { NextHopContext, NextHopTarget } from '../http/next-hop-socket.ts';
import { H2SessionPool } from '../h2/h2-session-pool.ts';
import type { Destination } from '../pipeline/request-pipeline.ts';
import { CallerLimits } from '../upstream/caller-limits.ts';
import { createUpstreamPool } from '../upstream/upstream-pool.ts';

/**
 * The app behind one inbound port, as the pipeline's forward step reaches it: an HTTP/1.1
 * keep-alive pool and an h2c session on loopback, each caller behind its share
 * (limits.maxInFlightPerCaller, caller-limits.ts). gRPC calls — and every stream of a `grpc`
 * port — go to the app over HTTP/2; anything else over HTTP/1.1.
 */
export class AppPort implements Destination {
  readonly tunnel: NextHopTarget;
  readonly #callers: CallerLimits;
  readonly #pool: ReturnType<typeof createUpstreamPool>;
  readonly #h2: H2SessionPool;
  readonly #grpcPort: boolean;

  constructor(target: NextHopTarget, grpcPort: boolean, hopContext: NextHopContext) {
    this.tunnel = target;
    this.#grpcPort = grpcPort;
    this.#pool = createUpstreamPool(target, hopContext);
    this.#callers = new CallerLimits(this.#pool, target.label, hopContext.settings.limits.maxInFlightPerCaller);
    this.#h2 = new H2SessionPool(target, hopContext);
  }

  http1(caller: string | null): NextHop {
    return this.#callers.hop(caller);
  }

  streamsOverH2(grpc: boolean): boolean {
    return grpc || this.#grpcPort;
  }

  h2(): H2SessionPool {
    return this.#h2;
  }

  admitStream(caller: string | null, stream: http2.ServerHttp2Stream): ProxyError | null {
    return this.#callers.admitStream(caller, stream);
  }

  async close(): Promise<void> {
    this.#h2.destroy();
    await this.#pool.destroy();
  }
}
