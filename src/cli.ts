// `meshlet` entry point when run from the sources (`node src/cli.ts …`, as npm scripts do).
import { main } from './cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
