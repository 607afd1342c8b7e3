/**
 * Composable caller matchers, go-spiffe style (MatchID, MatchMemberOf, MatchOneOf): each is
 * built once per reload and answers on a verified peer SPIFFE ID string (null = a plaintext
 * caller on a PERMISSIVE port) with string compares only — no parsing per request. The peer
 * string comes from a certificate already validated against the SPIFFE rules, so a prefix
 * compare on `spiffe://<td>/ns/<ns>/sa/` is exact.
 */
export type CallerMatcher = (peer: string | null) => boolean;

/** Exactly this SPIFFE ID. */
export function exactId(id: string): CallerMatcher {
  return (peer) => peer === id;
}

/** Any ServiceAccount of `namespace` in `trustDomain`: spiffe://<td>/ns/<namespace>/sa/<any>. */
export function namespace(trustDomain: string, ns: string): CallerMatcher {
  const prefix = `spiffe://${trustDomain}/ns/${ns}/sa/`;
  return (peer) => peer !== null && peer.length > prefix.length && peer.startsWith(prefix) && peer.indexOf('/', prefix.length) === -1;
}

/** Any identity of a trust domain. */
export function trustDomain(td: string): CallerMatcher {
  const root = `spiffe://${td}`;
  const prefix = `${root}/`;
  return (peer) => peer !== null && (peer === root || peer.startsWith(prefix));
}

/** Any caller that presented a verified mesh identity. */
export function anyAuthenticated(): CallerMatcher {
  return (peer) => peer !== null;
}

/** A plaintext caller (only possible on a PERMISSIVE port). */
export function unauthenticated(): CallerMatcher {
  return (peer) => peer === null;
}

const NOBODY: CallerMatcher = () => false;

/**
 * Any of `matchers`. Exact IDs are folded into one Set lookup so a route listing hundreds of
 * callers costs one hash probe, not hundreds of compares.
 */
export function oneOf(matchers: readonly CallerMatcher[], exactIds: readonly string[] = []): CallerMatcher {
  const ids = new Set(exactIds);
  if (matchers.length === 0 && ids.size === 0) return NOBODY;
  if (matchers.length === 0) return (peer) => peer !== null && ids.has(peer);
  if (ids.size === 0 && matchers.length === 1) return matchers[0]!;
  return (peer) => {
    if (peer !== null && ids.has(peer)) return true;
    for (let i = 0; i < matchers.length; i++) if (matchers[i]!(peer)) return true;
    return false;
  };
}
