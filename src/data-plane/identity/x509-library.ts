// The one place @peculiar/x509 is loaded: its dependency tsyringe needs Reflect metadata
// before it is evaluated, and the library needs a WebCrypto provider. Import `x509` from
// here, never from '@peculiar/x509' directly (that throws "tsyringe requires a reflect polyfill").
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
