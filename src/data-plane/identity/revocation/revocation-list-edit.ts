import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { RevocationListError } from './errors.ts';
import { formatRevocationList, parseRevocationList, type RevokedEntry } from './revocation-list.ts';

/**
 * What `meshlet identity revoke | unrevoke` do to a list file (docs/revocation.md "Revoking"):
 * read it (absent: the empty list; malformed: refused, never overwritten), add or remove one
 * entry, and write the result atomically — a temporary file in the same directory renamed over
 * the list, so a sidecar or identity service watching it never reads half a list.
 */

/** The ConfigMap that carries the list to the sidecars and the identity service. */
export const REVOCATION_CONFIGMAP_NAME = 'meshlet-revocations';
export const REVOCATION_CONFIGMAP_KEY = 'revocations.json';

export interface ListEdit {
  /** false: the ID was already (revoke) or was not (unrevoke) listed; nothing to write. */
  readonly changed: boolean;
  /** The whole list after the edit, as the file holds it (or would). */
  readonly content: string;
  /** IDs revoked after the edit. */
  readonly size: number;
}

/** The entries of the list at `path`; an absent file is the empty list. Throws RevocationListError for anything else. */
export async function readListEntries(path: string): Promise<RevokedEntry[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new RevocationListError('REVOCATION_LIST_UNREADABLE', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return [...parseRevocationList(bytes).entries];
  } catch (err) {
    if (err instanceof RevocationListError) throw new RevocationListError(err.code, `${path}: ${err.message} (fix or remove the file; it was not changed)`);
    throw err;
  }
}

/** Adds `spiffeId` (already checked with checkRevocableId) to the entries; idempotent: an ID already listed keeps its entry. */
export function withRevoked(entries: readonly RevokedEntry[], spiffeId: string, reason: string | undefined, now = new Date()): { entries: RevokedEntry[]; changed: boolean } {
  if (entries.some((e) => e.spiffeId === spiffeId)) return { entries: [...entries], changed: false };
  const revokedAt = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { entries: [...entries, { spiffeId, revokedAt, ...(reason !== undefined ? { reason } : {}) }], changed: true };
}

export function withoutRevoked(entries: readonly RevokedEntry[], spiffeId: string): { entries: RevokedEntry[]; changed: boolean } {
  const kept = entries.filter((e) => e.spiffeId !== spiffeId);
  return { entries: kept, changed: kept.length !== entries.length };
}

/** Applies an edit to the file at `path`; writes (atomically) only when something changed and `write` is true. */
export async function editListFile(path: string, edit: (entries: RevokedEntry[]) => { entries: RevokedEntry[]; changed: boolean }, write: boolean): Promise<ListEdit> {
  const { entries, changed } = edit(await readListEntries(path));
  const content = formatRevocationList(entries);
  // What we write must be what every reader accepts: parse it back before it replaces anything.
  parseRevocationList(content);
  if (changed && write) await writeAtomically(path, content);
  return { changed, content, size: entries.length };
}

/** Writes `content` to a temporary file next to `path`, then renames it over `path` (one atomic step for readers). */
export async function writeAtomically(path: string, content: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, content, { mode: 0o644, flag: 'wx' });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** The ConfigMap manifest (YAML) holding `content` under REVOCATION_CONFIGMAP_KEY in `namespace`. */
export function revocationConfigMap(namespace: string, content: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: REVOCATION_CONFIGMAP_NAME, namespace, labels: { 'app.kubernetes.io/part-of': 'meshlet' } },
    data: { [REVOCATION_CONFIGMAP_KEY]: content },
  });
}
