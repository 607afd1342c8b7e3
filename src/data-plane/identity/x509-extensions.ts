import { MeshletError } from '../../common/errors/meshlet-error.ts';

/**
 * Reads the four certificate extensions X.509-SVID verification needs — basicConstraints,
 * keyUsage, extendedKeyUsage, subjectAltName URIs — plus every extension's criticality,
 * straight from the DER. node:crypto's X509Certificate exposes none of key-usage bits,
 * criticality or pathLen; @peculiar/x509 does, but parsing one certificate's extensions with
 * it measured ~1–2 ms on this project's 2-core machine against a few µs for this walk, and it
 * runs for every new peer certificate in the TLS handshake path. Input is DER that node:crypto
 * (OpenSSL) has already parsed as a certificate; every read is still bounds-checked.
 */
export class MalformedExtensionsError extends MeshletError {
  constructor(message: string) {
    super('X509_MALFORMED_EXTENSIONS', message);
  }
}

export interface SvidExtensions {
  readonly basicConstraints: { readonly ca: boolean; readonly pathLen: number | undefined } | undefined;
  /** Bit i of the KeyUsage BIT STRING as 1 << i (digitalSignature = 1, keyCertSign = 32, cRLSign = 64). */
  readonly keyUsage: number | undefined;
  readonly keyUsageCritical: boolean;
  /** Dotted OIDs. */
  readonly extKeyUsage: readonly string[] | undefined;
  /** Every uniformResourceIdentifier of subjectAltName, in order. */
  readonly uriSans: readonly string[];
  readonly sanCritical: boolean;
  /** Dotted OIDs of every extension marked critical. */
  readonly criticalExtensions: readonly string[];
}

export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

function bad(what: string): never {
  throw new MalformedExtensionsError(`malformed certificate DER: ${what}`);
}

/** One DER TLV (single-byte tags) at `off`, inside `limit`; throws MalformedExtensionsError. Also read by tls/session-peer.ts. */
export function readTlv(buf: Uint8Array, off: number, limit: number): Tlv {
  if (off + 2 > limit) bad(`truncated at byte ${off}`);
  const tag = buf[off]!;
  if ((tag & 0x1f) === 0x1f) bad(`multi-byte tag at byte ${off}`);
  let len = buf[off + 1]!;
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) bad(`bad length at byte ${off}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) bad(`element at byte ${off} runs past its parent`);
  return { tag, start, end };
}

function expect(t: Tlv, tag: number, what: string): Tlv {
  if (t.tag !== tag) bad(`expected ${what}`);
  return t;
}

function decodeOid(buf: Uint8Array, start: number, end: number): string {
  if (start >= end) bad('empty OID');
  const parts: number[] = [];
  let value = 0;
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      if (parts.length === 0) parts.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

function decodeInteger(buf: Uint8Array, t: Tlv): number {
  const n = t.end - t.start;
  if (n === 0 || n > 4 || buf[t.start]! & 0x80) bad('pathLenConstraint is not a small non-negative INTEGER');
  let v = 0;
  for (let i = t.start; i < t.end; i++) v = v * 256 + buf[i]!;
  return v;
}

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const TAG_SEQUENCE = 0x30;
const TAG_BOOLEAN = 0x01;
const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_OCTET_STRING = 0x04;
const TAG_OID = 0x06;
const TAG_EXTENSIONS = 0xa3; // [3] EXPLICIT in TBSCertificate
const TAG_URI = 0x86; // GeneralName uniformResourceIdentifier [6] IMPLICIT IA5String

/** Reads the extensions of a DER certificate. Throws MalformedExtensionsError (duplicates included, RFC 5280 §4.2). */
export function readSvidExtensions(der: Uint8Array): SvidExtensions {
  const cert = expect(readTlv(der, 0, der.length), TAG_SEQUENCE, 'Certificate SEQUENCE');
  const tbs = expect(readTlv(der, cert.start, cert.end), TAG_SEQUENCE, 'TBSCertificate SEQUENCE');
  let extensionsSeq: Tlv | undefined;
  for (let off = tbs.start; off < tbs.end; ) {
    const field = readTlv(der, off, tbs.end);
    if (field.tag === TAG_EXTENSIONS) extensionsSeq = expect(readTlv(der, field.start, field.end), TAG_SEQUENCE, 'Extensions SEQUENCE');
    off = field.end;
  }
  let basicConstraints: SvidExtensions['basicConstraints'];
  let keyUsage: number | undefined;
  let keyUsageCritical = false;
  let extKeyUsage: string[] | undefined;
  const uriSans: string[] = [];
  let sanCritical = false;
  const criticalExtensions: string[] = [];
  const seen = new Set<string>();
  if (extensionsSeq) {
    for (let off = extensionsSeq.start; off < extensionsSeq.end; ) {
      const ext = expect(readTlv(der, off, extensionsSeq.end), TAG_SEQUENCE, 'Extension SEQUENCE');
      off = ext.end;
      const oidTlv = expect(readTlv(der, ext.start, ext.end), TAG_OID, 'extension OID');
      const oid = decodeOid(der, oidTlv.start, oidTlv.end);
      if (seen.has(oid)) bad(`extension ${oid} appears twice`);
      seen.add(oid);
      let next = readTlv(der, oidTlv.end, ext.end);
      let critical = false;
      if (next.tag === TAG_BOOLEAN) {
        critical = next.end - next.start === 1 && der[next.start] !== 0;
        next = readTlv(der, next.end, ext.end);
      }
      const value = expect(next, TAG_OCTET_STRING, 'extension value OCTET STRING');
      if (critical) criticalExtensions.push(oid);
      switch (oid) {
        case OID_BASIC_CONSTRAINTS: {
          const seq = expect(readTlv(der, value.start, value.end), TAG_SEQUENCE, 'BasicConstraints SEQUENCE');
          let ca = false;
          let pathLen: number | undefined;
          for (let p = seq.start; p < seq.end; ) {
            const item = readTlv(der, p, seq.end);
            if (item.tag === TAG_BOOLEAN) ca = item.end - item.start === 1 && der[item.start] !== 0;
            else if (item.tag === TAG_INTEGER) pathLen = decodeInteger(der, item);
            else bad('unexpected element in BasicConstraints');
            p = item.end;
          }
          basicConstraints = { ca, pathLen };
          break;
        }
        case OID_KEY_USAGE: {
          const bits = expect(readTlv(der, value.start, value.end), TAG_BIT_STRING, 'KeyUsage BIT STRING');
          if (bits.end - bits.start < 1) bad('empty KeyUsage BIT STRING');
          let flags = 0;
          // Bit 0 is the most significant bit of the first content byte; only bits 0–8 are defined.
          for (let i = 0; i < 9; i++) {
            const byte = bits.start + 1 + (i >> 3);
            if (byte < bits.end && der[byte]! & (0x80 >> (i & 7))) flags |= 1 << i;
          }
          keyUsage = flags;
          keyUsageCritical = critical;
          break;
        }
        case OID_EXT_KEY_USAGE: {
          const seq = expect(readTlv(der, value.start, value.end), TAG_SEQUENCE, 'ExtKeyUsage SEQUENCE');
          extKeyUsage = [];
          for (let p = seq.start; p < seq.end; ) {
            const item = expect(readTlv(der, p, seq.end), TAG_OID, 'KeyPurposeId OID');
            extKeyUsage.push(decodeOid(der, item.start, item.end));
            p = item.end;
          }
          break;
        }
        case OID_SUBJECT_ALT_NAME: {
          const seq = expect(readTlv(der, value.start, value.end), TAG_SEQUENCE, 'GeneralNames SEQUENCE');
          for (let p = seq.start; p < seq.end; ) {
            const name = readTlv(der, p, seq.end);
            if (name.tag === TAG_URI) uriSans.push(Buffer.from(der.buffer, der.byteOffset + name.start, name.end - name.start).toString('latin1'));
            p = name.end;
          }
          sanCritical = critical;
          break;
        }
      }
    }
  }
  return { basicConstraints, keyUsage, keyUsageCritical, extKeyUsage, uriSans, sanCritical, criticalExtensions };
}
