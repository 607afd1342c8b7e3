import { describe, expect, it } from 'vitest';
import { encodeGrpcMessage } from '../../../src/data-plane/proxy/pipeline/caller-answer.ts';

// grpc-message is percent-encoded (gRPC over HTTP/2 spec): a denial's reason quotes route names
// and may carry any UTF-8, and must reach the client's status message intact.
describe('encodeGrpcMessage', () => {
  it('percent-encodes "%", non-printable and non-ASCII bytes only', () => {
    expect(encodeGrpcMessage('a b"c')).toBe('a b"c');
    expect(encodeGrpcMessage('100%')).toBe('100%25');
    expect(encodeGrpcMessage('é\n')).toBe('%C3%A9%0A');
  });

  it('round-trips through decodeURIComponent', () => {
    const reason = 'caller is not authorized by route "admin": ü 100%';
    expect(decodeURIComponent(encodeGrpcMessage(reason))).toBe(reason);
  });
});
