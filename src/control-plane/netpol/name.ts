import { createHash } from 'node:crypto';

/** A DNS label (RFC 1123), what kubectl and most tools expect of an object's name. */
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const MAX_LABEL = 63;
/** "-" + 8 hex digits of sha256: room for the hash that keeps a shortened name unique. */
const HASH_SUFFIX = 9;

export function isDnsLabel(s: string): boolean {
  return DNS_LABEL.test(s);
}

/**
 * The NetworkPolicy's name: `meshlet-<policy>-<entry names>` (each name once, in the order
 * given), a valid DNS label of at most 63 characters. Deterministic, so regenerating and
 * re-applying updates the same objects. Characters a DNS label cannot hold (the `.` of a DNS
 * subdomain policy name, upper case) become `-` or lower case; a name that is too long (or
 * had to be changed) keeps its first characters and ends with 8 hex digits of the sha256 of
 * the parts, so two different policies never share a name by truncation.
 */
export function networkPolicyName(policyName: string | undefined, entryNames: readonly string[]): string {
  const parts = ['meshlet', ...(policyName ? [policyName] : []), ...new Set(entryNames)];
  const joined = parts.join('-');
  const cleaned = joined.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-+/g, '-').replace(/^-|-$/g, '');
  if (cleaned === joined && isDnsLabel(cleaned)) return cleaned;
  const hash = createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, HASH_SUFFIX - 1);
  const head = cleaned.slice(0, MAX_LABEL - HASH_SUFFIX).replace(/-+$/, '');
  return `${head}-${hash}`;
}
