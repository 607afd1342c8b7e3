import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/common/config/env.ts';
import { readSidecarConfig, SIDECAR_ENV } from '../../../src/data-plane/sidecar/sidecar-env.ts';
import { DEFAULT_KEY_EXCHANGE, groupName, KEY_EXCHANGE_GROUPS, KEY_EXCHANGE_MODES, keyExchangeGroups } from '../../../src/data-plane/tls/key-exchange.ts';
import { sessionKeyExchangeGroup } from '../../../src/data-plane/tls/session-peer.ts';

/** DER TLV with a definite length. */
function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

/** The shape of OpenSSL's SSL_SESSION ASN.1 with `kex_group` ([19] EXPLICIT UINT32) holding `group` as DER INTEGER content bytes. */
function session(group: Buffer | undefined): Buffer {
  return tlv(
    0x30,
    Buffer.concat([
      tlv(0x02, Buffer.from([1])),
      tlv(0x02, Buffer.from([3, 4])),
      tlv(0x04, Buffer.from([0x13, 0x02])),
      tlv(0xa1, tlv(0x02, Buffer.from([0x66, 0x00, 0x00, 0x00]))),
      tlv(0xb2, tlv(0x04, Buffer.from('h2'))), // a field before it, as ticket_appdata [18] would be
      ...(group ? [tlv(0xb3, tlv(0x02, group))] : []),
    ]),
  );
}

function nodeWrapped(der: Buffer): Buffer {
  return Buffer.concat([Buffer.from('\0nodejs:tls:session:1\0', 'latin1'), Buffer.from([0, 9]), Buffer.from('127.0.0.1'), der]);
}

describe('sessionKeyExchangeGroup: the group OpenSSL records in a serialized session', () => {
  it('reads kex_group, with or without Node\'s client-session header, however short its INTEGER', () => {
    expect(sessionKeyExchangeGroup(session(Buffer.from([0x11, 0xec])))).toBe(0x11ec);
    expect(sessionKeyExchangeGroup(nodeWrapped(session(Buffer.from([0x11, 0xec]))))).toBe(0x11ec);
    expect(sessionKeyExchangeGroup(session(Buffer.from([0x1d])))).toBe(0x1d);
    // 0x8000 and up take a leading zero to stay positive.
    expect(sessionKeyExchangeGroup(session(Buffer.from([0x00, 0xfe, 0x01])))).toBe(0xfe01);
  });

  it('answers undefined for a session without the field, a malformed one, or a value no TLS group can have', () => {
    expect(sessionKeyExchangeGroup(undefined)).toBeUndefined();
    expect(sessionKeyExchangeGroup(Buffer.alloc(0))).toBeUndefined();
    expect(sessionKeyExchangeGroup(session(undefined))).toBeUndefined();
    const whole = session(Buffer.from([0x11, 0xec]));
    expect(sessionKeyExchangeGroup(whole.subarray(0, whole.length - 1))).toBeUndefined();
    expect(sessionKeyExchangeGroup(session(Buffer.from([0x00])))).toBeUndefined();
    expect(sessionKeyExchangeGroup(session(Buffer.from([0x01, 0x00, 0x00])))).toBeUndefined();
    expect(sessionKeyExchangeGroup(session(Buffer.from([0x00, 0x00, 0x01, 0x00])))).toBeUndefined();
    expect(sessionKeyExchangeGroup(tlv(0x30, tlv(0xb3, tlv(0x04, Buffer.from([0x11, 0xec])))))).toBeUndefined();
  });
});

describe('group names', () => {
  it('are IANA\'s, and a code point outside the table is shown as hex', () => {
    expect([0x11ec, 0x001d, 0x0017, 0x0018].map(groupName)).toEqual(['X25519MLKEM768', 'X25519', 'secp256r1', 'secp384r1']);
    expect(groupName(0x1234)).toBe('0x1234');
    expect(groupName(0x2a)).toBe('0x002a');
  });
});

describe('MESHLET_TLS_KEY_EXCHANGE', () => {
  const minimal = { MESHLET_NAMESPACE: 'shop', MESHLET_SERVICE_ACCOUNT: 'orders' };

  it('defaults to hybrid; hybrid, classical and pq-only are read as given', () => {
    expect(SIDECAR_ENV.tlsKeyExchange.default).toBe('hybrid');
    expect(DEFAULT_KEY_EXCHANGE).toBe('hybrid');
    expect(readSidecarConfig(minimal).tlsKeyExchange).toBe('hybrid');
    for (const mode of KEY_EXCHANGE_MODES) expect(readSidecarConfig({ ...minimal, MESHLET_TLS_KEY_EXCHANGE: mode }).tlsKeyExchange).toBe(mode);
  });

  it('refuses any other value with the configuration error every setting gives', () => {
    let err: unknown;
    try {
      readSidecarConfig({ ...minimal, MESHLET_TLS_KEY_EXCHANGE: 'X25519MLKEM768' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('MESHLET_CONFIG_INVALID');
    expect((err as ConfigError).problems.map((p) => p.variable)).toEqual(['MESHLET_TLS_KEY_EXCHANGE']);
    expect((err as ConfigError).message).toContain('MESHLET_TLS_KEY_EXCHANGE="X25519MLKEM768": must be one of hybrid, classical, pq-only');
  });

  it('each mode is a group list this Node\'s OpenSSL takes; only classical leaves ML-KEM out', () => {
    for (const mode of KEY_EXCHANGE_MODES) expect(keyExchangeGroups(mode)).toBe(KEY_EXCHANGE_GROUPS[mode]);
    expect(KEY_EXCHANGE_GROUPS).toEqual({
      hybrid: '*X25519MLKEM768/*X25519:secp256r1:secp384r1',
      classical: 'X25519:secp256r1:secp384r1',
      'pq-only': 'X25519MLKEM768',
    });
    expect(() => keyExchangeGroups('auto' as never)).toThrow(expect.objectContaining({ code: 'TLS_BAD_KEY_EXCHANGE' }));
  });
});
