import type { Command } from '../command.ts';
import { MeshletError } from '../../errors/meshlet-error.ts';

// Placeholder until the issue that builds `meshlet iptables` lands: it fails loudly, never pretends.
export const commands: Command[] = [
  {
    name: 'iptables',
    summary: 'not built yet',
    help: 'Usage: meshlet iptables\n\nNot built yet in this version of meshlet.',
    async run() {
      throw new MeshletError('MESHLET_NOT_BUILT', 'meshlet iptables is not built yet in this version');
    },
  },
];
