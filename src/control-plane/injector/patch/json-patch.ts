import { InjectorInternalError } from './errors.ts';
import { unescapePointerToken } from './json-pointer.ts';

/** The RFC 6902 operations the injector emits (`remove` only for a label it cannot vouch for, service-account-label.ts). */
export type JsonPatchOp = { op: 'add'; path: string; value: unknown } | { op: 'replace'; path: string; value: unknown } | { op: 'remove'; path: string };

/**
 * Applies the injector's own patches (add / replace) to a deep copy of `doc`, exactly as the
 * API server would (RFC 6902 §4.1: `add` on an array index inserts, `-` appends; on an object
 * member it sets; §4.2: `remove` of an object member that must exist). `meshlet inject` uses it offline, so the manifest it prints is the pod the
 * webhook would have produced; the tests cross-check it against fast-json-patch. It is not a
 * general RFC 6902 engine: the production image carries no dev dependency, and the injector
 * needs no more than this.
 */
export function applyJsonPatch<T>(doc: T, ops: readonly JsonPatchOp[]): T {
  const root = structuredClone(doc) as unknown;
  for (const op of ops) {
    const tokens = op.path.split('/').slice(1).map(unescapePointerToken);
    const last = tokens.pop();
    if (last === undefined) throw new InjectorInternalError(`patch path ${JSON.stringify(op.path)} targets the whole document`);
    let parent = root;
    for (const t of tokens) {
      parent = Array.isArray(parent) ? parent[Number(t)] : (parent as Record<string, unknown> | undefined)?.[t];
      if (parent === null || typeof parent !== 'object') throw new InjectorInternalError(`patch path ${JSON.stringify(op.path)}: parent does not exist`);
    }
    if (op.op === 'remove') {
      if (Array.isArray(parent) || !Object.hasOwn(parent as object, last)) throw new InjectorInternalError(`patch path ${JSON.stringify(op.path)}: nothing to remove`);
      delete (parent as Record<string, unknown>)[last];
      continue;
    }
    const value = structuredClone(op.value);
    if (Array.isArray(parent)) {
      const index = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(index) || index < 0 || index > parent.length) throw new InjectorInternalError(`patch path ${JSON.stringify(op.path)}: index out of range`);
      if (op.op === 'add') parent.splice(index, 0, value);
      else parent[index] = value;
    } else {
      (parent as Record<string, unknown>)[last] = value;
    }
  }
  return root as T;
}
