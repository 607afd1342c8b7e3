import { describe, expect, it } from 'vitest';
import { applyJsonPatch, escapePointerToken, pointer } from '../../../src/control-plane/injector/patch/index.ts';

describe('JSON Pointer escaping (RFC 6901)', () => {
  it('escapes ~ before / so that "/" never becomes "~01"', () => {
    expect(escapePointerToken('meshlet.io/status')).toBe('meshlet.io~1status');
    expect(escapePointerToken('a~/b')).toBe('a~0~1b');
    expect(escapePointerToken('~1')).toBe('~01');
  });

  it('builds paths from tokens and indexes', () => {
    expect(pointer('metadata', 'annotations', 'meshlet.io/status')).toBe('/metadata/annotations/meshlet.io~1status');
    expect(pointer('spec', 'containers', 0, 'livenessProbe')).toBe('/spec/containers/0/livenessProbe');
  });

  it('round-trips through the patch applier for keys with ~ and /', () => {
    const doc = { metadata: { annotations: { 'x~y/z': 'old' } } };
    const out = applyJsonPatch(doc, [{ op: 'add', path: pointer('metadata', 'annotations', 'a/~b'), value: 'new' }]);
    expect(out.metadata.annotations).toEqual({ 'x~y/z': 'old', 'a/~b': 'new' });
    expect(doc.metadata.annotations).toEqual({ 'x~y/z': 'old' });
  });
});
