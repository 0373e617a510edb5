// SIGKILL of the tpmds-attestor process while NewKey and ImportSigningKey calls run, again and
// again at random points, on one --state-dir and one swtpm. After every kill: each record in the
// state directory reads back (never partial or unreadable), and the next start removes the
// leftover temp files. At the end every key whose RPC returned OK still signs (verified with
// the public key the RPC returned or the imported key). Used by hardening-crash.test.ts (a few
// rounds) and scripts/faults.ts (50 or more).
import { createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { decodePublicKeyPem } from '@tpmds/protocol/formats';
import { KeyStore } from '../src/keystore.js';
import { ekPublicFromSpki, importBlobBytes, sleep, spawnAttestor, type SpawnedAttestor } from './e2e-support.js';

export interface CrashLoopResult {
  rounds: number;
  /** Calls that returned OK (each a key that must survive). */
  okKeys: number;
  /** Calls cut by the kill (UNAVAILABLE/CANCELLED/... on the client). */
  interrupted: number;
  /** Records found on disk whose call never returned OK (the kill came between the write and the reply). */
  storedWithoutReply: number;
  /** Temp files found after kills (all removed by the next start). */
  tempFilesLeft: number;
  /** Records that did not read back (must be 0). */
  unreadable: string[];
  /** Keys that returned OK but do not sign, or whose signature does not verify (must be 0). */
  lost: string[];
  elapsedMs: number;
}

function attestorArgs(tpm: string, stateDir: string): string[] {
  return [
    '--insecure', '--listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--tpm', tpm,
    '--state-dir', stateDir, '--event-log', '/nonexistent', '--max-keys-per-identity', '0',
  ];
}

function allFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

/** Runs `rounds` start-load-SIGKILL rounds; `random` picks the kill delays (50 ms to maxDelayMs after the calls start; deterministic in tests). */
export async function crashLoop(opts: { tpm: string; stateDir: string; rounds: number; random?: () => number; maxDelayMs?: number; log?: (line: string) => void }): Promise<CrashLoopResult> {
  const random = opts.random ?? Math.random;
  const started = Date.now();
  const result: CrashLoopResult = { rounds: 0, okKeys: 0, interrupted: 0, storedWithoutReply: 0, tempFilesLeft: 0, unreadable: [], lost: [], elapsedMs: 0 };
  /** Public keys of the keys whose RPC returned OK, by kid. */
  const ok = new Map<string, KeyObject>();
  let att: SpawnedAttestor = await spawnAttestor(attestorArgs(opts.tpm, opts.stateDir));
  await att.client.getAK({ uid: 'crash', keyType: 'ecc' });
  const ek = ekPublicFromSpki((await att.client.getEKCert('ecc')).ekPub, 'ecc');
  let next = 0;

  for (let round = 0; round < opts.rounds; round++) {
    let stop = false;
    const worker = async (w: number): Promise<void> => {
      while (!stop) {
        const kid = `k${next++}`;
        try {
          if (w % 2 === 0) {
            const r = await att.client.newKey({ uid: 'crash', kid, keyType: w % 4 === 0 ? 'rsa' : 'ecc' });
            ok.set(kid, createPublicKey({ key: Buffer.from(decodePublicKeyPem(r.public)), format: 'der', type: 'spki' }));
          } else {
            const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
            await att.client.importSigningKey({ uid: 'crash', kid, encryptedSigningKey: importBlobBytes(ek, { kind: 'signingKey', privateKey }) });
            ok.set(kid, publicKey);
          }
          result.okKeys++;
        } catch (e) {
          if (typeof (e as grpc.ServiceError).code !== 'number') throw e;
          result.interrupted++;
          return; // the attestor is gone
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    await sleep(50 + Math.floor(random() * ((opts.maxDelayMs ?? 750) - 50)));
    att.child.kill('SIGKILL');
    await att.exited;
    stop = true;
    att.client.close();
    await Promise.all(workers);
    result.rounds++;

    // The state directory after the kill: every record reads back (checked on a copy: opening a
    // store cleans temp files, which is the next attestor's job here); temp files may be left.
    const copy = `${opts.stateDir}.check`;
    rmSync(copy, { recursive: true, force: true });
    cpSync(opts.stateDir, copy, { recursive: true });
    const store = await KeyStore.open(copy);
    for (const f of allFiles(opts.stateDir)) {
      const name = relative(opts.stateDir, f);
      if (name.split('/').pop()!.startsWith('.tmp-')) {
        result.tempFilesLeft++;
        continue;
      }
      const m = /^keys\/crash\/(.+)\.json$/.exec(name) ?? /^ak\/(crash)\.json$/.exec(name);
      if (m === null) {
        result.unreadable.push(`${name}: unexpected file`);
        continue;
      }
      try {
        await store.get(name.startsWith('ak/') ? { identity: '', uid: 'crash' } : { identity: '', uid: 'crash', kid: m[1]! });
      } catch (e) {
        result.unreadable.push(`${name}: ${(e as Error).message}`);
      }
    }
    rmSync(copy, { recursive: true, force: true });
    att = await spawnAttestor(attestorArgs(opts.tpm, opts.stateDir));
    // (The new attestor's own readiness probe may be there for a moment: not a leftover.)
    const left = allFiles(opts.stateDir).filter((f) => f.split('/').pop()!.startsWith('.tmp-') && !f.includes(`.tmp-${att.child.pid}-`));
    if (left.length > 0) result.unreadable.push(`temp files left after a start: ${left.join(', ')}`);
    opts.log?.(`round ${round + 1}: ${ok.size} keys OK so far, ${result.interrupted} calls interrupted`);
  }

  const stored = (readdirSync(join(opts.stateDir, 'keys', 'crash'))).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5));
  result.storedWithoutReply = stored.filter((k) => !ok.has(k)).length;
  for (const [kid, key] of ok) {
    const data = new TextEncoder().encode(`after the crashes: ${kid}`);
    try {
      const r = await att.client.sign({ uid: 'crash', kid, data });
      const good = key.asymmetricKeyType === 'rsa' ? verify('sha256', data, key, r.signed) : verify('sha256', data, { key, dsaEncoding: 'der' }, r.signed);
      if (!good) result.lost.push(`${kid}: the signature does not verify`);
    } catch (e) {
      result.lost.push(`${kid}: ${(e as Error).message}`);
    }
  }
  await att.stop();
  result.elapsedMs = Date.now() - started;
  return result;
}
