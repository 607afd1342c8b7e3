import { compileClient, type CompiledClient } from '../../../src/data-plane/policy/client-policy.ts';
import { parsePolicy } from '../../../src/data-plane/policy/parse.ts';

/**
 * The client side of one workload, `frontend` (ServiceAccount frontend, namespace `namespace`,
 * mesh client default allow), compiled from its `destinations:` lines (YAML, indented under
 * `destinations:`) and optional extra lines of the client entry (`default:`, `mode:`). The one
 * way the client-policy tests make a policy; a test policy that does not parse is a broken test.
 */
export function frontendClient(destinations: string, opts: { namespace?: string; clientLines?: string } = {}): CompiledClient {
  const r = parsePolicy(`apiVersion: policy.meshlet.io/v1alpha1
kind: AuthorizationPolicy
spec:
  clients:
    - name: frontend
      selector: { serviceAccount: frontend }
${opts.clientLines ?? ''}      destinations:
${destinations}`, 'p.yaml');
  if (!r.ok) throw new Error(`test policy does not parse: ${JSON.stringify(r.errors)}`);
  const compiled = compileClient(r.policy, { namespace: opts.namespace ?? 'web', serviceAccount: 'frontend' }, 'allow');
  if (compiled === null) throw new Error('test policy selects no client');
  return compiled;
}
