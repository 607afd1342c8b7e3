import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REVOCATION_POLL_MS } from '../../../src/data-plane/identity/revocation/revocation-list-file.ts';
import { CA_REVOCATION_POLL_MS } from '../../../src/data-plane/identity/revocation/ca-revocation-feed.ts';
import { TOKEN_TRUST_MS, TRUSTED_TOKENS_MAX } from '../../../src/control-plane/identity-service/revocations.ts';
import { MAX_REASON_LENGTH, MAX_REVOCATION_LIST_BYTES, MAX_REVOKED_ENTRIES, parseRevocationList } from '../../../src/data-plane/identity/revocation/revocation-list.ts';
import { REVOCATION_CONFIGMAP_KEY, REVOCATION_CONFIGMAP_NAME } from '../../../src/data-plane/identity/revocation/revocation-list-edit.ts';
import { SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { IDENTITY_ENV } from '../../../src/control-plane/identity-service/config.ts';

/** docs/revocation.md is a contract: its example list, limits, names and defaults are the code's. */
const doc = readFileSync(new URL('../../../docs/revocation.md', import.meta.url), 'utf8');

describe('docs/revocation.md', () => {
  it('its example list is a valid list revoking the ID it shows', () => {
    const example = /```json\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(example).toBeDefined();
    const set = parseRevocationList(example!);
    expect(set.entries).toEqual([{ spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders', revokedAt: '2026-12-04T07:00:00Z', reason: 'key leaked in a build log' }]);
  });

  it('states the limits, the poll period and the ConfigMap names the code uses', () => {
    expect(MAX_REVOCATION_LIST_BYTES).toBe(1024 * 1024);
    expect(doc).toContain('**1 MiB** (1,048,576 bytes) per file');
    expect(doc).toContain(`**${MAX_REVOKED_ENTRIES.toLocaleString('en-US')}** entries`);
    expect(doc).toContain(`at most ${MAX_REASON_LENGTH} characters`);
    expect(REVOCATION_POLL_MS).toBe(1000);
    expect(doc).toContain('**poll every 1 s**');
    expect(doc).toContain(`\`${REVOCATION_CONFIGMAP_NAME}\` (key \`${REVOCATION_CONFIGMAP_KEY}\`)`);
    expect(CA_REVOCATION_POLL_MS).toBe(5000);
    expect(doc).toContain('**every 5 s**');
    expect(TOKEN_TRUST_MS).toBe(5 * 60 * 1000);
    expect(doc).toContain('trusts a token that authenticated for 5 minutes');
    expect(doc).toContain(`at most ${TRUSTED_TOKENS_MAX.toLocaleString('en-US')} tokens are remembered`);
  });

  it('names both variables, off by default', () => {
    expect(SIDECAR_ENV.revocationList.name).toBe('MESHLET_REVOCATION_LIST');
    expect(SIDECAR_ENV.revocationList.default).toBe('');
    expect(IDENTITY_ENV.revocationList.name).toBe('MESHLET_IDENTITY_REVOCATION_LIST');
    expect(IDENTITY_ENV.revocationList.default).toBe('');
    expect(doc).toContain('`MESHLET_REVOCATION_LIST` (default empty: no revocation at all)');
    expect(doc).toContain('`MESHLET_IDENTITY_REVOCATION_LIST` (default empty: no check)');
  });
});
