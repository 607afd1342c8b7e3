/**
 * RFC 6901 JSON Pointers for the patch builder. Order matters: `~` becomes `~0` BEFORE `/`
 * becomes `~1`, or `/` would turn into `~01` (RFC 6901 §3). Annotation keys are the usual
 * victims: `meshlet.io/status` -> `/metadata/annotations/meshlet.io~1status`.
 */
export function escapePointerToken(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

export function unescapePointerToken(token: string): string {
  return token.replaceAll('~1', '/').replaceAll('~0', '~');
}

/** `pointer('metadata', 'annotations', 'meshlet.io/status')` -> `/metadata/annotations/meshlet.io~1status`. */
export function pointer(...tokens: readonly (string | number)[]): string {
  let out = '';
  for (const t of tokens) out += '/' + (typeof t === 'number' ? String(t) : escapePointerToken(t));
  return out;
}
