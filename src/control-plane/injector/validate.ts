import { parsePolicy, policyKeysOf, formatPolicyError } from '../../data-plane/policy/parse.ts';
import type { PolicyError } from '../../data-plane/policy/types.ts';
import type { AdmissionRequest, AdmissionResponseBody } from './webhook-server.ts';

/**
 * `POST /validate`: rejects a policy ConfigMap whose policy is invalid at `kubectl apply`
 * time, with the same messages `meshlet policy check` prints (same parser). Every *.yaml /
 * *.yml key of the ConfigMap is checked; warnings go back as admission warnings, which
 * kubectl prints without failing. Deletes and objects that are not ConfigMaps are allowed:
 * the ValidatingWebhookConfiguration selects policy ConfigMaps by label, so anything else
 * reaching here is a configuration mistake that must not block the cluster.
 *
 * A hostile policy (an alias bomb, a document over the caps of docs/policy.md "Limits") is
 * denied with its reason like any invalid one; parsePolicy never throws, and anything else
 * going wrong here is a denial naming it (POLICY_INTERNAL), never a 500, which kubectl shows as
 * an opaque "Internal error occurred".
 */
export function validatePolicyConfigMap(request: AdmissionRequest): AdmissionResponseBody {
  try {
    return validate(request);
  } catch (err) {
    return deny(`error POLICY_INTERNAL: the policy could not be validated: ${(err as Error)?.message ?? String(err)}`);
  }
}

function validate(request: AdmissionRequest): AdmissionResponseBody {
  if (request.operation === 'DELETE' || request.operation === 'CONNECT') return { allowed: true };
  const object = request.object as { kind?: unknown; metadata?: { name?: string; namespace?: string }; data?: Record<string, unknown> } | undefined;
  if (!object || object.kind !== 'ConfigMap') return { allowed: true };
  const ns = object.metadata?.namespace ?? request.namespace;
  const name = `${ns ? `${ns}/` : ''}${object.metadata?.name ?? request.name ?? ''}`;
  const keys = policyKeysOf(object.data);
  if (keys.length === 0) {
    return deny(`ConfigMap ${name} is labelled as a meshlet policy but has no data key ending in .yaml or .yml`);
  }
  const errors: PolicyError[] = [];
  const warnings: PolicyError[] = [];
  for (const key of keys) {
    const value = object.data![key];
    const source = `ConfigMap ${name} data[${key}]`;
    if (typeof value !== 'string') {
      errors.push({ severity: 'error', code: 'POLICY_SCHEMA', message: 'a ConfigMap data value must be a string', path: '', source });
      continue;
    }
    const result = parsePolicy(value, source);
    if (result.ok) warnings.push(...result.warnings);
    else for (const e of result.errors) (e.severity === 'error' ? errors : warnings).push(e);
  }
  const warningTexts = warnings.map(formatPolicyError);
  if (errors.length > 0) {
    return { ...deny(`invalid meshlet policy (${errors.length} error${errors.length > 1 ? 's' : ''}):\n${errors.map(formatPolicyError).join('\n')}`), ...(warningTexts.length ? { warnings: warningTexts } : {}) };
  }
  return { allowed: true, ...(warningTexts.length ? { warnings: warningTexts } : {}) };
}

function deny(message: string): AdmissionResponseBody {
  return { allowed: false, status: { code: 422, reason: 'Invalid', message } };
}
