import type { DemoCall, DemoResult } from './demo-mesh.ts';

/**
 * What one demo call came to, from the answer the calling app got: an allow names the
 * caller the app behind saw (the identity the sidecars verified), a denial the route and
 * reason from the sidecar's 403 body, anything else the mesh error code.
 */
export function demoResult(call: DemoCall, status: number, body: string): DemoResult {
  let detail = body;
  try {
    const parsed = JSON.parse(body) as { caller?: string; error?: { code?: string; route?: string | null; reason?: string; message?: string } };
    if (status === 200) detail = `the app saw caller ${parsed.caller}`;
    else if (parsed.error) detail = parsed.error.reason ? `route=${parsed.error.route ?? 'unmatched'}: ${parsed.error.reason}` : `${parsed.error.code}: ${parsed.error.message}`;
  } catch {
    // not JSON: keep the raw text
  }
  return { ...call, status, decision: status === 200 ? 'allow' : status === 403 ? 'deny' : 'error', detail };
}
