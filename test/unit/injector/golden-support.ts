import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { Pod } from '../../../src/control-plane/injector/patch/index.ts';

export const INJECTOR_FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/injector');
export const POD_DIR = join(INJECTOR_FIXTURES, 'pods');
export const GOLDEN_DIR = join(INJECTOR_FIXTURES, 'golden');

/** Every input pod, by fixture name (the file name without .yaml). */
export function podFixtures(): { name: string; pod: Pod }[] {
  return readdirSync(POD_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => ({ name: basename(f, '.yaml'), pod: parse(readFileSync(join(POD_DIR, f), 'utf8')) as Pod }));
}

export function loadPod(name: string): Pod {
  return parse(readFileSync(join(POD_DIR, `${name}.yaml`), 'utf8')) as Pod;
}
