import type { Logger } from 'pino';
import { boundField, type LogLimiter } from '../../common/log/log-limiter.ts';
import type { ConnectionDirection } from '../proxy/connection-registry.ts';
import type { DecisionLoggingAuthorizer, OutboundLogTarget, RequestDecisionLog } from '../proxy/inbound/authorize.ts';
import type { Http1Head, StreamHead } from '../proxy/pipeline/request-head.ts';
import type { AuthorizationDecision, NormalizedPath, PathNormalizer, RequestFacts } from '../proxy/request-authorizer.ts';
import type { ConnectionDecisionLog, DecisionLoggingConnectionAuthorizer } from '../proxy/tcp/app-splice.ts';
import type { ConnectionFacts } from '../proxy/tcp/connection-authorizer.ts';

/**
 * The decision log (docs/decision-log.md): one JSON line per authorization decision, for a
 * SIEM and for correlation with traces.
 *
 * - `MESHLET_DECISION_LOG=deny` (the default): every denial, audit would-deny and refused path,
 *   through the sidecar's one log limiter (RequestLog's: per (event, reason) token buckets, a
 *   `log_suppressed` line with the exact count left out). Allowed requests cost nothing here.
 * - `all`: the same, plus allowed requests sampled by `MESHLET_DECISION_LOG_ALLOW_SAMPLE`
 *   (a ratio; by trace id when the request carries a valid `traceparent`, so one trace is
 *   logged whole or not at all by every sidecar it crosses). Allow lines are not rate limited.
 * - `off`: no decision line; denials are then logged as the short `denied` line (RequestLog).
 *
 * The lines go through the sidecar's pino logger (same stream, base fields and format as every
 * other line) on a child whose level is `info` whatever MESHLET_LOG_LEVEL says: the decision log
 * is switched by its own setting. Every string a caller influences is cut to MAX_FIELD_BYTES.
 */
export const DECISION_LOG_MODES = ['off', 'deny', 'all'] as const;
export type DecisionLogMode = (typeof DECISION_LOG_MODES)[number];

/** The `event` of every decision line. */
export const DECISION_LOG_EVENT = 'authz_decision';
export const DECISION_LOG_MESSAGE = 'authorization decision';

/** The `decision` field: meshlet_authz_decisions_total's `result` values, plus `refused` (a path refused before the policy). */
export type LoggedDecision = 'allow' | 'deny' | 'audit_would_deny' | 'refused';
/** The `protocol` field. */
export type DecisionProtocol = 'http1' | 'h2' | 'grpc' | 'tcp';
/** The `code` of a `refused` line (the decision codes are the policy's: route-allowed, caller-not-allowed, …). */
export const REFUSED_PATH_CODE = 'bad-path';

export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** The caller's span (the traceparent's parent-id): 16 lowercase hex digits, not all zero. */
  readonly spanId: string;
}

/** value[from, to) as W3C hex: 0 not lowercase hex, 1 lowercase hex and all zeros, 2 lowercase hex with a digit other than 0. */
function lowerHex(value: string, from: number, to: number): 0 | 1 | 2 {
  let nonZero: 0 | 1 | 2 = 1;
  for (let i = from; i < to; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x30) continue;
    if ((c > 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66)) nonZero = 2;
    else return 0;
  }
  return nonZero;
}

/**
 * A `traceparent` value (W3C Trace Context §3.2), or null when it is not a valid one: the
 * ids are taken as they are, never repaired or invented. Version `00` is exactly
 * `00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`, lowercase; a higher version (not
 * `ff`) is read the same way and may go on after a `-` (the spec's forward compatibility).
 * All-zero ids are invalid.
 */
export function parseTraceparent(value: string): TraceContext | null {
  const length = value.length;
  if (length < 55 || (length > 55 && value.charCodeAt(55) !== 0x2d)) return null;
  if (value.charCodeAt(2) !== 0x2d || value.charCodeAt(35) !== 0x2d || value.charCodeAt(52) !== 0x2d) return null;
  // Version: two lowercase hex digits, not ff; 00 has nothing after the flags.
  if (lowerHex(value, 0, 2) === 0 || (value.charCodeAt(0) === 0x66 && value.charCodeAt(1) === 0x66)) return null;
  if (length > 55 && value.charCodeAt(0) === 0x30 && value.charCodeAt(1) === 0x30) return null;
  // trace-id and parent-id: lowercase hex, not all zero (2); flags: lowercase hex.
  if (lowerHex(value, 3, 35) !== 2 || lowerHex(value, 36, 52) !== 2 || lowerHex(value, 53, 55) === 0) return null;
  return { traceId: value.slice(3, 35), spanId: value.slice(36, 52) };
}

/**
 * The request's `traceparent` as it is forwarded to the app, or null when there is none — or
 * more than one: the spec allows one, and with two the app could read either, so neither is
 * logged as the request's trace.
 */
export function traceparentOf(head: Http1Head | StreamHead): string | null {
  // The fields forwarded to the app, names as sent (HTTP/1.1) or lowercase (HTTP/2).
  const fields = head.protocol === 'h2' ? head.stream.fields : head.forward.headers;
  let found: string | null = null;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    if (name.length === 11 && (name === 'traceparent' || name.toLowerCase() === 'traceparent')) {
      if (found !== null) return null;
      found = fields[i + 1]!;
    }
  }
  return found;
}

/** 2^52: the last 13 hex digits of a trace id, read as a number, are below `ratio` times this when sampled. */
const SAMPLE_SPACE = 2 ** 52;

/**
 * The allow-sampling decision for a trace: a pure function of the trace id, so every sidecar
 * with the same ratio keeps or drops the same traces. It reads the id's last 13 hex digits
 * (52 bits: the random part W3C Trace Context Level 2 asks tracers to put at the right end).
 */
export function sampledByTraceId(traceId: string, ratio: number): boolean {
  return Number.parseInt(traceId.slice(-13), 16) < ratio * SAMPLE_SPACE;
}

export interface DecisionLogOptions {
  mode: Exclude<DecisionLogMode, 'off'>;
  /** Share of allowed requests logged in mode `all`, 0..1. */
  allowSample: number;
  /** The sidecar's one limiter of caller-triggered lines (RequestLog.limiter). */
  limiter: LogLimiter;
  /** This sidecar's SPIFFE ID (the server of an inbound decision), read per line (its SVID may rotate). */
  server: () => string;
  /** sha256 (hex) of the policy in force, null while no policy was ever loaded. */
  policyHash: () => string | null;
  /** Tests: the random source of sampling for requests without a trace. */
  random?: () => number;
}

export class DecisionLog implements RequestDecisionLog, ConnectionDecisionLog {
  readonly mode: DecisionLogOptions['mode'];
  readonly allowSample: number;
  readonly logsAllows: boolean;
  readonly #logger: Logger;
  /** A child of #logger with the fields that change only with an SVID or a policy (made again when one does). */
  #bound: Logger;
  /** The same without `server`, for outbound lines (their server is the destination). */
  #boundOutbound: Logger;
  #boundServer: string | undefined;
  #boundHash: string | null | undefined;
  readonly #limiter: LogLimiter;
  readonly #server: () => string;
  readonly #policyHash: () => string | null;
  readonly #random: () => number;

  constructor(logger: Logger, opts: DecisionLogOptions) {
    if (!(opts.allowSample >= 0 && opts.allowSample <= 1)) throw new RangeError(`allowSample must be within 0..1; got ${opts.allowSample}`);
    this.mode = opts.mode;
    this.allowSample = opts.allowSample;
    this.logsAllows = opts.mode === 'all' && opts.allowSample > 0;
    // Its own level: MESHLET_DECISION_LOG switches these lines, not MESHLET_LOG_LEVEL.
    this.#logger = logger.child({}, { level: 'info' });
    this.#bound = this.#logger;
    this.#boundOutbound = this.#logger;
    this.#limiter = opts.limiter;
    this.#server = opts.server;
    this.#policyHash = opts.policyHash;
    this.#random = opts.random ?? Math.random;
  }

  decided(direction: ConnectionDirection, head: Http1Head | StreamHead, facts: RequestFacts, decision: AuthorizationDecision, outbound?: OutboundLogTarget): void {
    const result: LoggedDecision = decision.decision === 'deny' ? 'deny' : decision.wouldDeny === true ? 'audit_would_deny' : 'allow';
    // A flood's suppressed line costs the limiter and nothing else.
    if (result !== 'allow' && !this.#limiter.allow(DECISION_LOG_EVENT, decision.reason)) return;
    if (result === 'allow' && !this.logsAllows) return;
    const traceparent = traceparentOf(head);
    const trace = traceparent === null ? null : parseTraceparent(traceparent);
    const sample = this.allowSample;
    if (result === 'allow' && sample < 1 && !(trace !== null ? sampledByTraceId(trace.traceId, sample) : this.#random() < sample)) return;
    this.#write(result, direction, facts.peer, decision.route, codeOf(decision), decision.reason, protocolOf(head), facts.port, head.method, facts.path, undefined, trace, outbound);
  }

  pathRefused(direction: ConnectionDirection, head: Http1Head | StreamHead, peer: string | null, port: number, rawPath: string, reason: string): void {
    if (!this.#limiter.allow(DECISION_LOG_EVENT, reason)) return;
    const traceparent = traceparentOf(head);
    const trace = traceparent === null ? null : parseTraceparent(traceparent);
    this.#write('refused', direction, peer, null, REFUSED_PATH_CODE, reason, protocolOf(head), port, head.method, undefined, rawPath, trace);
  }

  connectionDecided(direction: ConnectionDirection, peer: string, port: number, decision: AuthorizationDecision, outbound?: OutboundLogTarget): void {
    const result: LoggedDecision = decision.decision === 'deny' ? 'deny' : decision.wouldDeny === true ? 'audit_would_deny' : 'allow';
    if (result === 'allow') {
      // No trace on an opaque stream: sampled at random.
      if (!this.logsAllows || (this.allowSample < 1 && !(this.#random() < this.allowSample))) return;
    } else if (!this.#limiter.allow(DECISION_LOG_EVENT, decision.reason)) {
      return;
    }
    this.#write(result, direction, peer, decision.route, codeOf(decision), decision.reason, 'tcp', port, undefined, undefined, undefined, null, outbound);
  }

  #write(
    decision: LoggedDecision,
    direction: ConnectionDirection,
    caller: string | null,
    route: string | null,
    code: string | undefined,
    reason: string,
    protocol: DecisionProtocol,
    port: number,
    method: string | undefined,
    path: string | undefined,
    rawPath: string | undefined,
    trace: TraceContext | null,
    outbound?: OutboundLogTarget,
  ): void {
    // event, server and policyHash are serialized once per (SVID identity, policy), as bindings.
    const server = this.#server();
    const policyHash = this.#policyHash();
    if (server !== this.#boundServer || policyHash !== this.#boundHash) {
      this.#bound = this.#logger.child({ event: DECISION_LOG_EVENT, server, policyHash });
      this.#boundOutbound = this.#logger.child({ event: DECISION_LOG_EVENT, policyHash });
      this.#boundServer = server;
      this.#boundHash = policyHash;
    }
    // An outbound line's server is the destination, not this sidecar (pino would print a bound
    // `server` and a line's `server` both): its own binding without it.
    const logger = outbound === undefined ? this.#bound : this.#boundOutbound;
    // One object shape per direction; pino leaves undefined fields out (null ones stay).
    const line = {
      ...(outbound === undefined ? {} : { server: outbound.server, destination: boundField(outbound.destination) }),
      direction,
      decision,
      caller: boundField(caller),
      route: boundField(route),
      code,
      reason: boundField(reason),
      protocol,
      port,
      method: boundField(method),
      path: boundField(path),
      rawPath: boundField(rawPath),
      traceId: trace?.traceId,
      spanId: trace?.spanId,
    };
    if (decision === 'allow') logger.info(line, DECISION_LOG_MESSAGE);
    else logger.warn(line, DECISION_LOG_MESSAGE);
  }
}

function protocolOf(head: Http1Head | StreamHead): DecisionProtocol {
  return head.protocol === 'http1' ? 'http1' : head.grpc ? 'grpc' : 'h2';
}

/** The policy's decision code (route-allowed, caller-not-allowed, …): the sidecar's authorizer returns the policy's own Decision. */
function codeOf(decision: AuthorizationDecision): string | undefined {
  return (decision as AuthorizationDecision & { readonly code?: string }).code;
}

/** What the sidecar's policy authorizer is to the proxies: requests, opaque connections and path normalization. */
export interface SidecarAuthorizer extends PathNormalizer {
  authorize(facts: RequestFacts | ConnectionFacts): AuthorizationDecision;
  reconsider?(facts: ConnectionFacts): AuthorizationDecision | null;
}

/**
 * `authorizer` with the decision log attached, as the proxies' deciding steps look for it
 * (authorize.ts, app-splice.ts); `authorizer` itself when the log is off.
 */
export function withDecisionLog(authorizer: SidecarAuthorizer, log: DecisionLog | undefined): SidecarAuthorizer & DecisionLoggingAuthorizer & DecisionLoggingConnectionAuthorizer {
  if (log === undefined) return authorizer;
  return {
    decisionLog: log,
    authorize: (facts: RequestFacts | ConnectionFacts): AuthorizationDecision => authorizer.authorize(facts),
    ...(authorizer.reconsider ? { reconsider: (facts: ConnectionFacts): AuthorizationDecision | null => authorizer.reconsider!(facts) } : {}),
    normalize: (rawPath: string): NormalizedPath => authorizer.normalize(rawPath),
  };
}
