// `node test/e2e/harness/sweep.ts` (as root): remove what aborted e2e runs (or a killed
// `meshlet demo --pods`) left behind.
import { sweepLeftovers } from '../../../src/dev/netns/leftover-sweeper.ts';

const removed = await sweepLeftovers();
console.log(removed.length === 0 ? 'nothing left over' : `removed:\n  ${removed.join('\n  ')}`);
