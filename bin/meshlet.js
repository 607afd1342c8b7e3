#!/usr/bin/env node
// The published entry point. In a clone meshlet runs its TypeScript sources directly through
// Node 24's type stripping, so this file only hands over; `npm run build` writes a copy of it
// to dist/bin/meshlet.js that imports the compiled CLI instead (scripts/build-dist.mjs).
// It is plain JavaScript that any Node can parse, and imports no .ts before checking the
// version: an older Node would otherwise die with ERR_UNKNOWN_FILE_EXTENSION.
const MIN_NODE_MAJOR = 24;
const found = process.versions.node;
if (Number(found.split('.')[0]) < MIN_NODE_MAJOR) {
  process.stderr.write(
    `meshlet needs Node ${MIN_NODE_MAJOR} or newer (found v${found}); run it as \`npx meshlet …\` after \`npm ci\` in the meshlet checkout (the project pins Node ${MIN_NODE_MAJOR})\n`,
  );
  process.exit(1);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
