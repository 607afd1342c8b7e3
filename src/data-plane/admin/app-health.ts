import { http } from '../../common/net/node-http.ts';
import { connect as http2Connect, constants as h2 } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as tcpConnect } from 'node:net';
import type { AppGrpcProbe, AppHttpProbe, AppProbe, AppTcpProbe } from '../sidecar/sidecar-env.ts';

/**
 * Runs an app probe the injector moved to the admin port (/app-health/<container>/<kind>)
 * against the app over loopback, and says what kubelet should see: a status (200-399 passes)
 * and a short plain-text reason. Every check is bounded by one deadline, after which it gives
 * up and answers 503, and holds at most one connection to the app, closed when it answers.
 */
export interface ProbeAnswer {
  status: number;
  body: string;
}

/** Kubelet's timeoutSeconds when a probe sets none. */
export const KUBELET_DEFAULT_TIMEOUT_SECONDS = 1;

/**
 * How long the sidecar gives the app: a little less than kubelet gives the sidecar, so kubelet
 * gets the sidecar's answer (and its reason) instead of timing out itself. 1 s -> 800 ms,
 * 10 s -> 9.8 s. `cap` (the admin server's probeTimeoutMs option) lowers it further.
 */
export function probeDeadlineMs(probe: AppProbe, cap?: number): number {
  const kubelet = (probe.timeoutSeconds ?? KUBELET_DEFAULT_TIMEOUT_SECONDS) * 1000;
  const budget = kubelet - Math.min(200, kubelet / 5);
  return cap === undefined ? budget : Math.min(budget, cap);
}

export function runAppProbe(probe: AppProbe, host: string, deadlineMs: number): Promise<ProbeAnswer> {
  if (probe.kind === 'tcp') return tcpProbe(probe, host, deadlineMs);
  if (probe.kind === 'grpc') return grpcProbe(probe, host, deadlineMs);
  return httpProbe(probe, host, deadlineMs);
}

/** One settle per check, and the deadline timer cleared with it. */
function settleOnce(deadlineMs: number, onDeadline: () => void): { settle: (a: ProbeAnswer) => void; answer: Promise<ProbeAnswer> } {
  let resolve!: (a: ProbeAnswer) => void;
  const answer = new Promise<ProbeAnswer>((r) => (resolve = r));
  let done = false;
  const timer = setTimeout(() => {
    if (done) return;
    settle({ status: 503, body: `timeout: no answer from the app within ${deadlineMs} ms` });
    onDeadline();
  }, deadlineMs);
  const settle = (a: ProbeAnswer) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    resolve(a);
  };
  return { settle, answer };
}

/** GET on the app's port; its status passes through unchanged (kubelet treats 200-399 as success). */
function httpProbe(probe: AppHttpProbe, host: string, deadlineMs: number): Promise<ProbeAnswer> {
  const headers: Record<string, string> = { 'user-agent': 'meshlet-probe' };
  for (const h of probe.headers ?? []) headers[h.name] = h.value;
  const send = probe.scheme === 'HTTPS' ? httpsRequest : http.request;
  const upstream = send({
    host,
    port: probe.port,
    path: probe.path,
    method: 'GET',
    headers,
    agent: false,
    // The app's own HTTPS probe targets are self-signed as often as not; kubelet does not
    // verify them either.
    rejectUnauthorized: false,
  });
  const { settle, answer } = settleOnce(deadlineMs, () => upstream.destroy());
  upstream.on('response', (up) => {
    up.resume();
    up.on('end', () => settle({ status: up.statusCode ?? 502, body: `app answered ${up.statusCode}` }));
    up.on('error', (err) => settle({ status: 503, body: `app response failed: ${err.message}` }));
  });
  upstream.on('error', (err) => settle({ status: 503, body: `app unreachable: ${err.message}` }));
  upstream.end();
  return answer;
}

/** A TCP connect to the app's port: 200 when it connects (kubelet's tcpSocket probe). */
function tcpProbe(probe: AppTcpProbe, host: string, deadlineMs: number): Promise<ProbeAnswer> {
  const socket = tcpConnect({ host, port: probe.port });
  const { settle, answer } = settleOnce(deadlineMs, () => socket.destroy());
  socket.once('connect', () => {
    socket.destroy();
    settle({ status: 200, body: `connected to port ${probe.port}` });
  });
  socket.once('error', (err) => settle({ status: 503, body: `cannot connect to port ${probe.port}: ${err.message}` }));
  return answer;
}

const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
/** grpc.health.v1.HealthCheckResponse.ServingStatus */
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;
/** A HealthCheckResponse is a few bytes; anything this big is not one. */
const MAX_RESPONSE_BYTES = 16 * 1024;

/**
 * grpc.health.v1.Health/Check over h2c (https://github.com/grpc/grpc/blob/master/doc/health-checking.md),
 * as kubelet's grpc probe does it: 200 only when the answer is SERVING. One HTTP/2 session per
 * call, closed when it answers; no gRPC library (the sidecar does not load one for probes).
 */
function grpcProbe(probe: AppGrpcProbe, host: string, deadlineMs: number): Promise<ProbeAnswer> {
  const authority = host.includes(':') ? `[${host}]:${probe.port}` : `${host}:${probe.port}`;
  const session = http2Connect(`http://${authority}`);
  const { settle: settleAnswer, answer } = settleOnce(deadlineMs, () => session.destroy());
  const settle = (a: ProbeAnswer) => {
    settleAnswer(a);
    session.destroy();
  };
  session.on('error', (err) => settle({ status: 503, body: `gRPC health check failed: ${err.message}` }));

  const stream = session.request({
    [h2.HTTP2_HEADER_METHOD]: 'POST',
    [h2.HTTP2_HEADER_PATH]: HEALTH_CHECK_PATH,
    [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
    [h2.HTTP2_HEADER_TE]: 'trailers',
    [h2.HTTP2_HEADER_USER_AGENT]: 'meshlet-probe',
    'grpc-timeout': `${Math.max(1, Math.floor(deadlineMs))}m`,
    'grpc-accept-encoding': 'identity',
  });
  let httpStatus: number | undefined;
  let grpcStatus: string | undefined;
  let grpcMessage: string | undefined;
  const chunks: Buffer[] = [];
  let received = 0;
  const readStatus = (headers: Record<string, unknown>) => {
    if (headers['grpc-status'] !== undefined) grpcStatus = String(headers['grpc-status']);
    if (headers['grpc-message'] !== undefined) grpcMessage = decodeURIComponent(String(headers['grpc-message']));
  };
  stream.on('response', (headers) => {
    httpStatus = Number(headers[h2.HTTP2_HEADER_STATUS]);
    readStatus(headers); // trailers-only answers carry grpc-status in the headers
  });
  stream.on('trailers', readStatus);
  stream.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > MAX_RESPONSE_BYTES) return settle({ status: 503, body: `gRPC health check: response larger than ${MAX_RESPONSE_BYTES} bytes` });
    chunks.push(chunk);
  });
  stream.on('error', (err) => settle({ status: 503, body: `gRPC health check failed: ${err.message}` }));
  stream.on('end', () => settle(grpcVerdict(httpStatus, grpcStatus, grpcMessage, Buffer.concat(chunks))));
  // Reset without an end (RST_STREAM NO_ERROR, a GOAWAY): no answer is not SERVING.
  stream.on('close', () => settle({ status: 503, body: `gRPC health check: stream closed without an answer (code ${stream.rstCode ?? 'none'})` }));
  stream.end(encodeHealthCheckRequest(probe.service ?? ''));
  return answer;
}

function grpcVerdict(httpStatus: number | undefined, grpcStatus: string | undefined, grpcMessage: string | undefined, body: Buffer): ProbeAnswer {
  if (httpStatus !== 200) return { status: 503, body: `gRPC health check: HTTP status ${httpStatus ?? 'none'}` };
  if (grpcStatus === undefined) return { status: 503, body: 'gRPC health check: no grpc-status' };
  if (grpcStatus !== '0') return { status: 503, body: `gRPC health check: grpc-status ${grpcStatus}${grpcMessage ? ` (${grpcMessage})` : ''}` };
  const status = decodeHealthCheckResponse(body);
  if (typeof status === 'string') return { status: 503, body: `gRPC health check: ${status}` };
  const name = SERVING_STATUS[status] ?? `status ${status}`;
  return { status: status === 1 ? 200 : 503, body: name };
}

/** A gRPC message: flag 0 (uncompressed), 4-byte big-endian length, then HealthCheckRequest { string service = 1 }. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const value = Buffer.from(service, 'utf8');
  // proto3 leaves a field with its default value out: "" is an empty message.
  const message = value.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(value.length), value]);
  const frame = Buffer.alloc(5);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  return Buffer.concat([frame, message]);
}

/** HealthCheckResponse { ServingStatus status = 1 } from one gRPC message -> the status, or why it is not one. */
export function decodeHealthCheckResponse(body: Buffer): number | string {
  if (body.length < 5) return 'no response message';
  if (body[0] !== 0) return 'compressed response (identity was asked for)';
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) return 'malformed response framing';
  const message = body.subarray(5);
  let status = 0; // proto3 default: UNKNOWN
  let i = 0;
  while (i < message.length) {
    const tag = readVarint(message, i);
    if (tag === undefined) return 'malformed response message';
    i = tag.next;
    const field = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    if (wire === 0) {
      const v = readVarint(message, i);
      if (v === undefined) return 'malformed response message';
      i = v.next;
      if (field === 1) status = v.value;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const len = readVarint(message, i);
      if (len === undefined) return 'malformed response message';
      i = len.next + len.value;
    } else return 'malformed response message';
    if (i > message.length) return 'malformed response message';
  }
  return status;
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

function readVarint(buf: Buffer, start: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = start; i < buf.length && i < start + 10; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return { value, next: i + 1 };
  }
  return undefined;
}
