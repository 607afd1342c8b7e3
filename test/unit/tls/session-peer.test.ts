import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createRootCa, issueSvid } from '../../../src/control-plane/identity-service/ca.ts';
import { sessionPeerCertificate } from '../../../src/data-plane/tls/session-peer.ts';

/** DER TLV with a definite length. */
function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

/** The shape of OpenSSL's SSL_SESSION ASN.1: version, ssl_version, cipher, id, master key, [1] time, [2] timeout, [3] peer, [4] sid ctx. */
function session(peer: Buffer | undefined): Buffer {
  const fields = [
    tlv(0x02, Buffer.from([1])),
    tlv(0x02, Buffer.from([3, 4])),
    tlv(0x04, Buffer.from([0x13, 0x02])),
    tlv(0x04, Buffer.alloc(32, 7)),
    tlv(0x04, Buffer.alloc(48, 9)),
    tlv(0xa1, tlv(0x02, Buffer.from([0x66, 0x00, 0x00, 0x00]))),
    tlv(0xa2, tlv(0x02, Buffer.from([0x0e, 0x10]))),
    ...(peer ? [tlv(0xa3, peer)] : []),
    tlv(0xa4, tlv(0x04, Buffer.alloc(32, 1))),
  ];
  return tlv(0x30, Buffer.concat(fields));
}

/** Node 24's wrapping of a client session: a marker, the server name's length and the name. */
function nodeWrapped(der: Buffer, servername = '127.0.0.1'): Buffer {
  const name = Buffer.from(servername);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(name.length);
  return Buffer.concat([Buffer.from('\0nodejs:tls:session:1\0', 'latin1'), length, name, der]);
}

describe('sessionPeerCertificate: the server certificate a client session carries', () => {
  let cert: Buffer;
  beforeAll(async () => {
    const ca = await createRootCa({ trustDomain: 'cluster.local' });
    cert = new X509Certificate((await issueSvid(ca, { spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders' })).certChainPem).raw;
  });

  it('reads the peer field, with or without Node\'s header', () => {
    expect(sessionPeerCertificate(session(cert))?.equals(cert)).toBe(true);
    expect(sessionPeerCertificate(nodeWrapped(session(cert)))?.equals(cert)).toBe(true);
    expect(sessionPeerCertificate(nodeWrapped(session(cert), 'orders.shop.svc.cluster.local'))?.equals(cert)).toBe(true);
  });

  it('answers undefined, never a wrong certificate, for anything else', () => {
    expect(sessionPeerCertificate(undefined)).toBeUndefined();
    expect(sessionPeerCertificate(Buffer.alloc(0))).toBeUndefined();
    expect(sessionPeerCertificate(session(undefined))).toBeUndefined();
    const whole = session(cert);
    expect(sessionPeerCertificate(whole.subarray(0, whole.length - 1))).toBeUndefined();
    expect(sessionPeerCertificate(Buffer.concat([whole, Buffer.from([0])]))).toBeUndefined();
    expect(sessionPeerCertificate(Buffer.concat([Buffer.from('junk'), whole]))).toBeUndefined();
    // A peer field that is not one certificate.
    expect(sessionPeerCertificate(tlv(0x30, tlv(0xa3, tlv(0x04, Buffer.from('not a cert')))))).toBeUndefined();
    expect(sessionPeerCertificate(tlv(0x30, tlv(0xa3, Buffer.concat([cert, Buffer.from([0x05, 0x00])]))))).toBeUndefined();
  });
});
