import { ANNOTATIONS, applyJsonPatch, injectPod, type InjectionSettings, type Pod } from './patch/index.ts';

/**
 * The label opt-out: the webhook's objectSelector (deploy/injector/mutating-webhook.yaml,
 * `meshlet.io/inject NotIn [disabled]`) never sends a pod so labelled to the injector, so
 * `meshlet inject` leaves its template alone too. Same key as the annotation opt-out.
 */
export const INJECT_LABEL = ANNOTATIONS.inject;
export const INJECT_LABEL_OPT_OUT = 'disabled';

/**
 * Offline injection (`meshlet inject`): finds the pod (template) inside any workload manifest,
 * runs the webhook's own patch builder on it, and applies the patch, so the printed manifest
 * is exactly the pod the webhook would have produced.
 */

type Manifest = Record<string, unknown>;

/** Where each kind keeps its pod template (a Pod is its own template). */
const POD_TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export interface ManifestInjection {
  /** The manifest, injected, or the input itself when nothing changed. */
  manifest: unknown;
  /** One line per pod template: what happened to it (for stderr). */
  notes: string[];
}

/** Workload kinds whose pod template `meshlet inject` injects (List items are visited too). */
export const INJECTABLE_KINDS: readonly string[] = [...Object.keys(POD_TEMPLATE_PATHS), 'List'];

/**
 * Injects one manifest. `defaultNamespace` stands in for the namespace the API server would
 * fill in when the manifest has none. Throws PodRefusedError exactly where the webhook would
 * deny the pod.
 */
export function injectManifest(manifest: unknown, defaultNamespace: string, settings: InjectionSettings): ManifestInjection {
  const notes: string[] = [];
  return { manifest: visit(manifest, defaultNamespace, settings, notes), notes };
}

function visit(manifest: unknown, defaultNamespace: string, settings: InjectionSettings, notes: string[]): unknown {
  if (!isObject(manifest) || typeof manifest.kind !== 'string') return manifest;
  const kind = manifest.kind;
  if (kind === 'List' || (kind.endsWith('List') && Array.isArray(manifest.items))) {
    if (!Array.isArray(manifest.items)) return manifest;
    return { ...manifest, items: manifest.items.map((item) => visit(item, defaultNamespace, settings, notes)) };
  }
  const path = POD_TEMPLATE_PATHS[kind];
  if (!path) return manifest;
  const template = getIn(manifest, path);
  if (!isObject(template)) return manifest;
  const metadata = isObject(manifest.metadata) ? manifest.metadata : {};
  const namespace = typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : defaultNamespace;
  const label = `${kind}/${typeof metadata.name === 'string' ? metadata.name : '(unnamed)'}`;
  const templateLabels = isObject(template.metadata) && isObject(template.metadata.labels) ? template.metadata.labels : {};
  if (templateLabels[INJECT_LABEL] === INJECT_LABEL_OPT_OUT) {
    notes.push(`${label}: skipped (label ${INJECT_LABEL}=${INJECT_LABEL_OPT_OUT} on the pod template: the webhook's objectSelector never sends such pods to the injector)`);
    return manifest;
  }
  // A label on the workload itself is not on its pods: the webhook would inject them.
  const ownLabels = path.length > 0 && isObject(metadata.labels) ? metadata.labels : {};
  if (ownLabels[INJECT_LABEL] === INJECT_LABEL_OPT_OUT) {
    notes.push(`${label}: label ${INJECT_LABEL}=${INJECT_LABEL_OPT_OUT} is on the ${kind}, not on its pod template: the webhook sees only the pods' labels and injects them; move it to ${[...path, 'metadata', 'labels'].join('.')}`);
  }
  const result = injectPod(template as Pod, namespace, settings);
  for (const w of result.warnings) notes.push(`${label}: ${w}`);
  if (result.outcome === 'skipped') {
    notes.push(`${label}: skipped (${result.message})`);
    return manifest;
  }
  notes.push(`${label}: injected`);
  return setIn(manifest, path, applyJsonPatch(template, result.patch));
}

function isObject(v: unknown): v is Manifest {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function getIn(obj: Manifest, path: readonly string[]): unknown {
  let cur: unknown = obj;
  for (const key of path) cur = isObject(cur) ? cur[key] : undefined;
  return cur;
}

/** A copy of `obj` with `value` at `path`; the input is not modified. */
function setIn(obj: Manifest, path: readonly string[], value: unknown): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return value;
  return { ...obj, [head]: setIn(obj[head] as Manifest, rest, value) };
}
