/**
 * HTTP/2 as raw frames (RFC 9113 §4.1), for the attacks node's own client refuses to send:
 * the client preface, frame encoding, and a reader that splits what the server sends back
 * into frames (acknowledging its SETTINGS so it proceeds).
 */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, GOAWAY: 0x7, CONTINUATION: 0x9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

export function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK "literal without indexing, new name", no Huffman: any field, exactly as given (short fields only). */
export function literalField(name: string, value: string): Buffer {
  if (name.length > 126 || value.length > 126) throw new Error('h2-frames writes short fields only');
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name, 'latin1'), Buffer.from([value.length]), Buffer.from(value, 'latin1')]);
}

export interface ReceivedFrame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/**
 * Feeds the bytes a server sent, calls `onFrame` for each complete frame, and writes the ACK of
 * every non-ACK SETTINGS frame with `reply` (a server waits for it before some of its limits apply).
 */
export function frameReader(reply: (bytes: Buffer) => void, onFrame: (f: ReceivedFrame) => void): (chunk: Buffer) => void {
  let buffered = Buffer.alloc(0);
  return (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const f = { type: buffered[3]!, flags: buffered[4]!, stream: buffered.readUInt32BE(5) & 0x7fffffff, payload: buffered.subarray(9, 9 + length) };
      buffered = buffered.subarray(9 + length);
      if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0) reply(frame(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0)));
      onFrame(f);
    }
  };
}
