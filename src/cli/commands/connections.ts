import type { Command } from '../command.ts';
import { MeshletError } from '../../errors/meshlet-error.ts';

// Placeholder until the issue that builds `meshlet connections` lands: it fails loudly, never pretends.
export const commands: Command[] = [
  {
    name: 'connections',
    summary: 'not built yet',
    help: 'Usage: meshlet connections\n\nNot built yet in this version of meshlet.',
    async run() {
      throw new MeshletError('MESHLET_NOT_BUILT', 'meshlet connections is not built yet in this version');
    },
  },
];
