import type { Command } from '../command.ts';
import { parseFlags } from '../command.ts';
import { topLevelHelp } from '../main.ts';

// Until the demo mesh exists (issue 8), `npm start` introduces meshlet and its commands.
export const commands: Command[] = [
  {
    name: 'demo',
    summary: 'run a whole demo mesh on this machine',
    help: 'Usage: meshlet demo\n\nRuns a demo mesh on this machine (CA, three services with sidecars, a live policy).',
    async run(argv, io) {
      parseFlags(argv, {});
      io.stdout.write(topLevelHelp() + '\n\nThe demo mesh is not built yet; the commands above are what exists today.\n');
      return 0;
    },
  },
];
