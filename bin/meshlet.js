#!/usr/bin/env node
// The published entry point. meshlet runs its TypeScript sources directly through
// Node 24's type stripping (DESIGN.md: no build step), so this file only hands over.
import { main } from '../src/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
