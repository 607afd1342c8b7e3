import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { handshakeFailureReason } from '../../../src/data-plane/tls/mesh-tls.ts';
import { SvidVerifyError } from '../../../src/data-plane/identity/svid-verify.ts';
import { TlsPeerError } from '../../../src/data-plane/tls/errors.ts';

/** The reasons table of docs/tls.md, as reason -> codes. */
async function documentedReasons(): Promise<Map<string, string[]>> {
  const doc = await readFile(new URL('../../../docs/tls.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Handshake failure reasons'), doc.indexOf('## Errors'));
  const table = new Map<string, string[]>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const reason = /^`([a-z_]+)`$/.exec(cells[1] ?? '')?.[1];
    if (!reason) continue;
    const codes = [...(cells[3] ?? '').matchAll(/`([A-Z0-9_()]+)`/g)].flatMap((m) => expandOptional(m[1]!));
    table.set(reason, codes);
  }
  return table;
}

/** `UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)` names two codes. */
function expandOptional(code: string): string[] {
  const m = /^(.*)\((.*)\)$/.exec(code);
  return m ? [m[1]!, m[1]! + m[2]!] : [code];
}

describe('handshake failure reasons', () => {
  it('classifies every code the docs list under the reason they list it under', async () => {
    const table = await documentedReasons();
    expect([...table.keys()].sort()).toEqual(['bad_san', 'expired', 'no_client_cert', 'no_shared_group', 'other', 'plaintext_on_strict', 'protocol_version', 'revoked', 'unknown_ca', 'wrong_identity']);
    let checked = 0;
    for (const [reason, codes] of table) {
      for (const code of codes) {
        expect([code, handshakeFailureReason(Object.assign(new Error(code), { code }))]).toEqual([code, reason]);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(30);
  });

  it('follows cause: a TlsPeerError wrapping an SvidVerifyError, and unknown things are "other"', () => {
    const wrapped = new TlsPeerError('SOMETHING_NEW', 'wrapped', { cause: new SvidVerifyError('SVID_EXPIRED', 'expired') });
    expect(handshakeFailureReason(wrapped)).toBe('expired');
    expect(handshakeFailureReason(new Error('socket hang up'))).toBe('other');
    expect(handshakeFailureReason(undefined)).toBe('other');
    expect(handshakeFailureReason('ECONNRESET')).toBe('other');
  });
});
