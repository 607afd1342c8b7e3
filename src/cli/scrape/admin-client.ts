import { MeshletError } from '../../common/errors/meshlet-error.ts';
import { UsageError } from '../../common/errors/meshlet-error.ts';

/** The admin port did not answer (refused, timed out, DNS failure). */
export class AdminUnreachableError extends MeshletError {
  constructor(url: string, cause: unknown) {
    const detail = describeCause(cause);
    super('ADMIN_UNREACHABLE', `cannot reach the sidecar admin port at ${url}: ${detail} (is the sidecar running, and is this its admin port, usually 15020?)`, { cause });
  }
}

/** The admin port answered, but not what a meshlet sidecar answers. */
export class AdminBadResponseError extends MeshletError {
  constructor(url: string, problem: string) {
    super('ADMIN_BAD_RESPONSE', `${url} did not answer like a meshlet admin port: ${problem}`);
  }
}

function describeCause(cause: unknown): string {
  // undici wraps the socket error in `cause` ("fetch failed" says nothing by itself).
  for (let e: unknown = cause, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code !== 'UND_ERR') return code === 'ABORT_ERR' || e.name === 'TimeoutError' ? 'timed out' : code;
    if (e.name === 'TimeoutError') return 'timed out';
  }
  return cause instanceof Error ? cause.message : String(cause);
}

/** The admin port says why it refused (e.g. /connections from the network): pass that on. */
function refusalReason(body: string): string {
  try {
    const reason = (JSON.parse(body) as { reason?: unknown } | null)?.reason;
    return typeof reason === 'string' ? ` (${reason})` : '';
  } catch {
    return '';
  }
}

/** Validates --admin: an http(s) URL with no path beyond "/" (the endpoints are fixed). */
export function parseAdminUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--admin must be a URL such as http://127.0.0.1:15020; got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--admin must be an http:// URL; got "${raw}"`);
  return url;
}

/**
 * GETs one admin endpoint (e.g. "/metrics") and returns its body. A refused or silent port
 * becomes AdminUnreachableError; a non-200 status becomes AdminBadResponseError.
 */
export async function fetchAdmin(base: URL, path: string, opts: { accept?: string; timeoutMs?: number } = {}): Promise<{ body: string; contentType: string }> {
  const url = new URL(path, base).toString();
  let res: Response;
  try {
    res = await fetch(url, { headers: opts.accept ? { accept: opts.accept } : {}, signal: AbortSignal.timeout(opts.timeoutMs ?? 5_000) });
  } catch (err) {
    throw new AdminUnreachableError(url, err);
  }
  let body: string;
  try {
    body = await res.text();
  } catch (err) {
    throw new AdminUnreachableError(url, err);
  }
  if (res.status !== 200) throw new AdminBadResponseError(url, `HTTP ${res.status}${refusalReason(body)}`);
  return { body, contentType: res.headers.get('content-type') ?? '' };
}
