import type { Command } from '../command.ts';
import { MeshletError } from '../../errors/meshlet-error.ts';

// Placeholder until the issue that builds `meshlet identity` lands: it fails loudly, never pretends.
export const commands: Command[] = [
  {
    name: 'identity',
    summary: 'not built yet',
    help: 'Usage: meshlet identity\n\nNot built yet in this version of meshlet.',
    async run() {
      throw new MeshletError('MESHLET_NOT_BUILT', 'meshlet identity is not built yet in this version');
    },
  },
];
