import type { Command } from '../command.ts';
import { MeshletError } from '../../errors/meshlet-error.ts';

// Placeholder until the issue that builds `meshlet wait-ready` lands: it fails loudly, never pretends.
export const commands: Command[] = [
  {
    name: 'wait-ready',
    summary: 'not built yet',
    help: 'Usage: meshlet wait-ready\n\nNot built yet in this version of meshlet.',
    async run() {
      throw new MeshletError('MESHLET_NOT_BUILT', 'meshlet wait-ready is not built yet in this version');
    },
  },
];
