// The entry of the worker thread that parses a large policy off the sidecar's event loop
// (parse-off-thread.ts). It parses one document, posts the ParseResult back and ends.
import { parentPort, workerData } from 'node:worker_threads';
import { parsePolicy } from './parse.ts';

const { text, source } = workerData as { text: string; source: string | undefined };
parentPort!.postMessage(parsePolicy(text, source));
