/**
 * The parts of a core/v1 Pod the injector reads or writes, typed loosely on purpose: the
 * admission request carries whatever the API server decoded, and fields the injector does
 * not know must pass through untouched. (kubernetes-models has the full types but is a
 * development dependency; the production image does not ship it.)
 */
export type JsonObject = Record<string, unknown>;

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
  appProtocol?: string;
}

export interface HttpGetAction {
  path?: string;
  port: number | string;
  host?: string;
  scheme?: string;
  httpHeaders?: { name: string; value: string }[];
}

export interface Probe extends JsonObject {
  httpGet?: HttpGetAction;
}

export interface Container extends JsonObject {
  name: string;
  ports?: ContainerPort[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
}

export interface PodSpec extends JsonObject {
  containers: Container[];
  initContainers?: Container[];
  volumes?: JsonObject[];
  hostNetwork?: boolean;
  serviceAccountName?: string;
}

export interface PodMetadata extends JsonObject {
  name?: string;
  namespace?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
}

export interface Pod extends JsonObject {
  metadata?: PodMetadata;
  spec: PodSpec;
}

/** The probe kinds kubelet runs, in the order the injector visits them (golden files depend on it). */
export const PROBE_KINDS = [
  ['livenessProbe', 'liveness'],
  ['readinessProbe', 'readiness'],
  ['startupProbe', 'startup'],
] as const;
