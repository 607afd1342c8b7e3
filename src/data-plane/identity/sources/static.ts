import { readFile } from 'node:fs/promises';
import type { IdentitySnapshot, SnapshotListener, SvidSource } from '../svid.ts';
import { parsePrivateKeyPem } from '../pem.ts';
import { SourceListeners } from './source-listeners.ts';
import { buildSnapshot } from './svid-material.ts';

/**
 * An identity source that holds one snapshot and changes it only when told to (`rotate`).
 * It is what the local demo and the tests use: certificates issued in-process or read once
 * from fixed files, with rotation driven by hand so a test can rotate at a chosen moment.
 * (The `files` source is the one that watches mounted files.)
 */
export class StaticSvidSource implements SvidSource {
  readonly kind = 'static';
  #snapshot: IdentitySnapshot;
  #closed = false;
  readonly #listeners = new SourceListeners();

  constructor(snapshot: IdentitySnapshot) {
    this.#snapshot = snapshot;
  }

  /**
   * Reads an SVID chain (leaf first), its PKCS#8 key and a bundle (PEM files, as
   * `meshlet ca issue` writes them) once. The bundle anchors the SVID's own trust domain;
   * the SVID is verified against it, so a source never starts with an SVID no peer accepts.
   */
  static async fromPemFiles(paths: { svid: string; key: string; bundle: string }): Promise<StaticSvidSource> {
    const [chainPem, keyPem, roots] = await Promise.all([readFile(paths.svid, 'utf8'), readFile(paths.key, 'utf8'), readFile(paths.bundle, 'utf8')]);
    return new StaticSvidSource(buildSnapshot({ chainPem, key: parsePrivateKeyPem(keyPem, paths.key), bundlePem: roots, what: paths.svid }));
  }

  start(): Promise<IdentitySnapshot> {
    return Promise.resolve(this.#snapshot);
  }

  current(): IdentitySnapshot | undefined {
    return this.#snapshot;
  }

  /** Replaces the snapshot and tells every listener, as a real renewal would. */
  rotate(snapshot: IdentitySnapshot): void {
    if (this.#closed) return;
    this.#snapshot = snapshot;
    this.#listeners.emitUpdate(snapshot);
  }

  onUpdate(listener: SnapshotListener): () => void {
    return this.#listeners.onUpdate(listener);
  }

  onError(listener: (err: Error) => void): () => void {
    return this.#listeners.onError(listener);
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    return Promise.resolve();
  }
}
