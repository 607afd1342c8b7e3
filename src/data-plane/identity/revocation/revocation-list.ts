import { createHash } from 'node:crypto';
import { parseSpiffeId } from '../../../common/identity/spiffe-id.ts';
import { RevocationListError } from './errors.ts';

/**
 * The revocation list (docs/revocation.md): one JSON document naming the SPIFFE IDs whose SVIDs
 * nobody in the mesh may accept, and to which the identity service issues nothing:
 *
 *   {"apiVersion":"meshlet.io/v1alpha1","kind":"RevocationList",
 *    "revoked":[{"spiffeId":"spiffe://td/ns/N/sa/S","revokedAt":"2026-12-04T07:00:00Z","reason":"key leaked"}]}
 *
 * Parsed strictly, as a security document should be: unknown fields, a bad ID, a bad date and a
 * duplicate are each refused with the path of the offending value, never skipped, because a
 * list read "mostly" would silently re-admit whoever the skipped entry named.
 */
export const REVOCATION_LIST_API_VERSION = 'meshlet.io/v1alpha1';
export const REVOCATION_LIST_KIND = 'RevocationList';
/**
 * Largest list file, as a ConfigMap holds at most 1 MiB: about 7,000 entries as the CLI writes
 * them (pretty-printed, ~150 bytes each), 10,000 written compactly. A bigger one is refused unread.
 */
export const MAX_REVOCATION_LIST_BYTES = 1024 * 1024;
/** Most entries: each is one Set entry in every sidecar; a revocation list is not a CRL of every certificate. */
export const MAX_REVOKED_ENTRIES = 10_000;
/** Longest `reason`, characters. */
export const MAX_REASON_LENGTH = 1024;

export interface RevokedEntry {
  readonly spiffeId: string;
  /** RFC 3339, as written. */
  readonly revokedAt: string;
  readonly reason?: string;
}

/** RFC 3339 date-time (section 5.6): a full date, T, a full time with optional fraction, Z or an offset. */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** True when `s` is an RFC 3339 date-time that names a real instant (no February 30th). */
export function isRfc3339(s: string): boolean {
  const m = RFC3339.exec(s);
  if (m === null) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 60) return false;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return day >= 1 && day <= daysInMonth && !Number.isNaN(Date.parse(s));
}

/**
 * The IDs in force, with O(1) lookup by SPIFFE ID (one Set.has per handshake). Immutable: a
 * reload makes a new one, so a reader never sees a half-applied list.
 */
export class RevocationSet {
  static readonly EMPTY = new RevocationSet([], createHash('sha256').update('').digest('hex'));
  readonly entries: readonly RevokedEntry[];
  /** SHA-256 of the bytes it was parsed from (hex): what reloads compare, and what logs name. */
  readonly digest: string;
  readonly #ids: ReadonlySet<string>;

  constructor(entries: readonly RevokedEntry[], digest: string) {
    this.entries = Object.freeze([...entries]);
    this.digest = digest;
    this.#ids = new Set(entries.map((e) => e.spiffeId));
  }

  has(spiffeId: string): boolean {
    return this.#ids.has(spiffeId);
  }

  get size(): number {
    return this.#ids.size;
  }

  /** The IDs listed here and not in `previous`: the ones whose open connections must now close. */
  addedSince(previous: RevocationSet): string[] {
    return this.entries.filter((e) => !previous.has(e.spiffeId)).map((e) => e.spiffeId);
  }

  /** The IDs of `previous` no longer listed: re-admitted. */
  removedSince(previous: RevocationSet): string[] {
    return previous.entries.filter((e) => !this.has(e.spiffeId)).map((e) => e.spiffeId);
  }
}

/**
 * Entries validated between two yields of the event loop by parseRevocationListInSlices: about
 * 1-2 ms of work (measured: ~2.7 µs an entry warm, several times that cold), so a reload of the
 * largest list never holds the sidecar's event loop for long.
 */
export const PARSE_SLICE_ENTRIES = 500;

/** Parses the bytes of a list file; throws RevocationListError naming the first problem and where it is. */
export function parseRevocationList(bytes: Buffer | string): RevocationSet {
  const steps = revocationListSteps(bytes);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * parseRevocationList for a running process: the same result and errors, but the entries are
 * checked PARSE_SLICE_ENTRIES at a time with the event loop free in between (what remains in one
 * piece is JSON.parse of the document and its SHA-256: a few ms for 1 MiB).
 */
export async function parseRevocationListInSlices(bytes: Buffer | string): Promise<RevocationSet> {
  const steps = revocationListSteps(bytes);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** The parser, yielding after every PARSE_SLICE_ENTRIES entries. */
function* revocationListSteps(bytes: Buffer | string): Generator<undefined, RevocationSet, undefined> {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  if (buf.length > MAX_REVOCATION_LIST_BYTES) {
    throw new RevocationListError('REVOCATION_LIST_TOO_LARGE', `the list is ${buf.length} bytes; at most ${MAX_REVOCATION_LIST_BYTES} are accepted`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new RevocationListError('REVOCATION_LIST_INVALID', `not JSON: ${(err as Error).message}`);
  }
  const invalid = (where: string, why: string): never => {
    throw new RevocationListError('REVOCATION_LIST_INVALID', `${where}: ${why}`);
  };
  if (!isPlainObject(doc)) invalid('the document', `must be a JSON object {"apiVersion":"${REVOCATION_LIST_API_VERSION}","kind":"${REVOCATION_LIST_KIND}","revoked":[…]}`);
  const top = doc as Record<string, unknown>;
  for (const key of Object.keys(top)) if (!['apiVersion', 'kind', 'revoked'].includes(key)) invalid(key, 'unknown field (allowed: apiVersion, kind, revoked)');
  if (top.apiVersion !== REVOCATION_LIST_API_VERSION) invalid('apiVersion', `must be "${REVOCATION_LIST_API_VERSION}", got ${JSON.stringify(top.apiVersion ?? null)}`);
  if (top.kind !== REVOCATION_LIST_KIND) invalid('kind', `must be "${REVOCATION_LIST_KIND}", got ${JSON.stringify(top.kind ?? null)}`);
  if (!Array.isArray(top.revoked)) invalid('revoked', 'must be an array (empty: nobody is revoked)');
  const list = top.revoked as unknown[];
  if (list.length > MAX_REVOKED_ENTRIES) {
    throw new RevocationListError('REVOCATION_LIST_TOO_LARGE', `revoked: ${list.length} entries; at most ${MAX_REVOKED_ENTRIES} are accepted`);
  }
  const seen = new Map<string, number>();
  const entries: RevokedEntry[] = [];
  for (let i = 0; i < list.length; i++) {
    if (i > 0 && i % PARSE_SLICE_ENTRIES === 0) yield;
    const raw = list[i];
    const at = `revoked[${i}]`;
    if (!isPlainObject(raw)) invalid(at, 'must be an object {"spiffeId":…,"revokedAt":…}');
    const e = raw as Record<string, unknown>;
    for (const key of Object.keys(e)) if (!['spiffeId', 'revokedAt', 'reason'].includes(key)) invalid(`${at}.${key}`, 'unknown field (allowed: spiffeId, revokedAt, reason)');
    if (typeof e.spiffeId !== 'string') invalid(`${at}.spiffeId`, 'must be a string');
    const spiffeId = checkRevocableId(e.spiffeId as string, `${at}.spiffeId`);
    const first = seen.get(spiffeId);
    if (first !== undefined) invalid(`${at}.spiffeId`, `${spiffeId} is listed twice (first at revoked[${first}])`);
    seen.set(spiffeId, i);
    if (typeof e.revokedAt !== 'string' || !isRfc3339(e.revokedAt)) invalid(`${at}.revokedAt`, `must be an RFC 3339 date-time such as "2026-12-04T07:00:00Z", got ${JSON.stringify(e.revokedAt ?? null)}`);
    if (e.reason !== undefined && (typeof e.reason !== 'string' || e.reason.length > MAX_REASON_LENGTH)) invalid(`${at}.reason`, `must be a string of at most ${MAX_REASON_LENGTH} characters`);
    entries.push({ spiffeId, revokedAt: e.revokedAt as string, ...(e.reason !== undefined ? { reason: e.reason as string } : {}) });
  }
  return new RevocationSet(entries, createHash('sha256').update(buf).digest('hex'));
}

/**
 * A SPIFFE ID that can be revoked: valid by the repo's one SPIFFE ID parser, and naming a
 * workload (an SVID never carries a bare trust domain, so listing one would revoke nothing).
 * Throws RevocationListError (REVOCATION_LIST_INVALID) whose message contains "invalid SPIFFE ID".
 */
export function checkRevocableId(input: string, where = 'spiffeId'): string {
  let id;
  try {
    id = parseSpiffeId(input);
  } catch (err) {
    throw new RevocationListError('REVOCATION_LIST_INVALID', `${where}: ${(err as Error).message}`);
  }
  if (id.path === '') throw new RevocationListError('REVOCATION_LIST_INVALID', `${where}: invalid SPIFFE ID ${JSON.stringify(input)} for revocation: it names a trust domain, not a workload (no SVID carries it)`);
  return id.id;
}

/** The canonical bytes of a list (what the CLI writes): two-space JSON, entries as given, a final newline. */
export function formatRevocationList(entries: readonly RevokedEntry[]): string {
  const doc = { apiVersion: REVOCATION_LIST_API_VERSION, kind: REVOCATION_LIST_KIND, revoked: entries.map((e) => ({ spiffeId: e.spiffeId, revokedAt: e.revokedAt, ...(e.reason !== undefined ? { reason: e.reason } : {}) })) };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
