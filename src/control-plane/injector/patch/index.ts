// The pod patch builder's public surface: the webhook (src/control-plane/injector/mutate.ts) and
// `meshlet inject` (src/control-plane/injector/workloads.ts) use only these.
export { injectPod, type InjectionResult, type InjectionStatus, type SkipReason } from './inject-pod.ts';
export { applyJsonPatch, type JsonPatchOp } from './json-patch.ts';
export { escapePointerToken, pointer } from './json-pointer.ts';
export { ANNOTATIONS, parsePodAnnotations, type PodAnnotations } from './annotations.ts';
export { PodRefusedError, InjectorInternalError, POD_REFUSAL_CODES, type PodRefusalCode } from './errors.ts';
export { DEFAULT_INJECTION_SETTINGS, INJECTION_ENV, readInjectionSettings, readInjectionSettingsWith, type InjectionSettings } from './settings.ts';
export { WEAKENING_ANNOTATIONS, type WeakeningAnnotation } from './pod-overrides.ts';
export type { Pod } from './pod-shape.ts';
