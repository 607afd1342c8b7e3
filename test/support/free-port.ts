export { freePorts } from '../../src/demo/free-ports.ts';
