// docs/identity-service.md is the operator's reference: its tables must name every variable
// `meshlet identity` reads (with the default the code applies) and every refusal code.
import { status } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IDENTITY_ENV } from '../../../src/control-plane/identity-service/config.ts';
import { CERTIFY_REFUSALS } from '../../../src/control-plane/identity-service/errors.ts';

const doc = readFileSync(new URL('../../../docs/identity-service.md', import.meta.url), 'utf8');
const rows = new Map<string, string>();
for (const line of doc.split('\n')) {
  const m = /^\| `([A-Z_]+)` \|([^|]*)\|/.exec(line);
  if (m) rows.set(m[1]!, m[2]!.trim());
}

describe('docs/identity-service.md', () => {
  for (const v of Object.values(IDENTITY_ENV)) {
    it(`documents ${v.name} with its default`, () => {
      expect(rows.has(v.name), `${v.name} missing from the configuration table`).toBe(true);
      if (v.default !== '') expect(rows.get(v.name)).toBe('`' + v.default + '`');
    });
  }

  it('documents every refusal code with its gRPC status and reason', () => {
    for (const [code, { reason, status: grpcStatus }] of Object.entries(CERTIFY_REFUSALS)) {
      const line = doc.split('\n').find((l) => l.startsWith('|') && l.includes('`' + code + '`'));
      expect(line, `${code} missing from the refusal table`).toBeDefined();
      expect(line).toContain('`' + reason + '`');
      expect(line).toContain(`| ${status[grpcStatus]} |`);
    }
  });
});
