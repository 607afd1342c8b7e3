export { freePorts } from '../../src/dev/demo/free-ports.ts';
