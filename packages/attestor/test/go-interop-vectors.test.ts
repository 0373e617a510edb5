// The shared vectors of the Go interop suite (interop/vectors/, recorded by go-interop.test.ts):
// payloads from one live run, as they crossed the wire. The Go suite decodes all of them with
// go-attestation and go-tpm-tools; this test decodes the same bytes with @tpmds/protocol and checks
// them with @tpmds/tpm2-wire: the attestor's payloads verify, and the Go libraries' payloads
// decode and re-encode to the same bytes (our JSON and protobuf writers match Go's).
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  TPMA_OBJECT,
  TPMS_ECC_POINT,
  TPMT_PUBLIC,
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_ID_OBJECT,
  TPM_ALG,
  certificateMatchesPublic,
  fromHex,
  pcrPolicyStep,
  policyDigest,
  toHex,
  unmarshal,
} from '@tpmds/tpm2-wire';
import { HashAlgo, decodeEncryptedCredential, decodeImportBlob, encodeEncryptedCredential, encodeImportBlob, requireBytes } from '@tpmds/protocol/formats';
import { REPO, assertLogMatchesQuote, checkAk, checkNewKey, checkQuote, ekPublicFromSpki, verifiesWith, type KeyType } from './e2e-support.js';

const DIR = join(REPO, 'interop/vectors');
const KEY_TYPES: readonly KeyType[] = ['rsa', 'ecc'];

interface Manifest {
  recorded: string;
  files: string[];
  values: Record<string, string>;
}

describe('Go interop shared vectors (interop/vectors): the attestor\'s and the Go libraries\' payloads decode on our side', () => {
  const manifest = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as Manifest;
  const file = (name: string): Uint8Array => {
    assert.ok(manifest.files.includes(name), `manifest.json lists ${name}`);
    return new Uint8Array(readFileSync(join(DIR, name)));
  };
  const value = (name: string): Uint8Array => {
    const v = manifest.values[name];
    assert.ok(v !== undefined, `manifest.json has the value ${name}`);
    return fromHex(v);
  };

  it('manifest.json lists exactly the payload files of the folder and names the Go libraries that made them', () => {
    const onDisk = readdirSync(DIR).filter((f) => f !== 'manifest.json' && f !== 'README.md').sort();
    assert.deepEqual([...manifest.files].sort(), onDisk);
    assert.match(manifest.recorded, /^go-attestation v\d+\.\d+\.\d+, go-tpm-tools v\d+\.\d+\.\d+$/);
  });

  it('attestor: EKs with their certificates; AKs (RSA, ECC) certified by themselves; quotes verify with their nonces and the event log replays to them', () => {
    for (const kt of KEY_TYPES) {
      const ek = ekPublicFromSpki(file(`ek-${kt}.der`), kt);
      assert.ok(certificateMatchesPublic(file(`ek-${kt}-cert.der`), ek), `ek-${kt}-cert.der is for ek-${kt}.der`);
      const ak = checkAk(file(`ak-${kt}.json`), kt);
      const q = checkQuote(file(`quote-${kt}.json`), ak, value(`quote-${kt}.nonce`), [TPM_ALG.SHA1, TPM_ALG.SHA256]);
      assert.ok(assertLogMatchesQuote(q.eventLog, q.pcrs) >= 2 * 8);
    }
  });

  it('attestor: NewKey keys (RSA, ECC) certified by the RSA AK, and their signatures', () => {
    const ak = checkAk(file('ak-rsa.json'), 'rsa');
    for (const kt of KEY_TYPES) {
      const key = checkNewKey({ public: file(`newkey-${kt}.pem`), keyCertification: file(`newkey-${kt}-certification.json`) }, ak, kt);
      assert.ok(verifiesWith(key.key, value(`newkey-${kt}.data`), file(`newkey-${kt}.sig`)));
    }
  });

  it('go-attestation: EncryptedCredential JSON decodes to an ID object and a secret for the EK type, and re-encodes as encoding/json does', () => {
    for (const ekType of KEY_TYPES) {
      const raw = file(`credential-ak-rsa-ek-${ekType}.json`);
      const ec = decodeEncryptedCredential(raw);
      // json.Marshal's bytes; ours are json.Encoder.Encode's, the same plus a newline (FORMATS.md).
      assert.equal(Buffer.from(encodeEncryptedCredential(ec)).toString(), `${Buffer.from(raw).toString()}\n`, 'our JSON is encoding/json\'s');
      const idObject = unmarshal(TPM2B_ID_OBJECT, requireBytes(ec.credential, 'Credential'));
      assert.ok(idObject.length > 32 + 2, 'integrity HMAC and encrypted identity');
      const encSecret = unmarshal(TPM2B_ENCRYPTED_SECRET, requireBytes(ec.secret, 'Secret'));
      if (ekType === 'rsa') assert.equal(encSecret.length, 256, 'RSA-2048 OAEP ciphertext');
      else assert.equal(unmarshal(TPMS_ECC_POINT, encSecret).x.length, 32, 'an ephemeral P-256 point');
    }
  });

  it('go-tpm-tools: ImportBlob protobufs (sealed, PCR-bound, signing key) decode and re-encode byte for byte; the PCR policy is ours for the quoted PCRs', () => {
    const quoted = checkQuote(file('quote-rsa.json'), checkAk(file('ak-rsa.json'), 'rsa'), value('quote-rsa.nonce'), [TPM_ALG.SHA1, TPM_ALG.SHA256]);
    for (const ekType of KEY_TYPES) {
      for (const name of [`importblob-ek-${ekType}`, `importblob-ek-${ekType}-pcr`, `signingkey-ek-${ekType}`]) {
        const raw = file(`${name}.pb`);
        const blob = decodeImportBlob(raw);
        assert.equal(toHex(encodeImportBlob(blob)), toHex(raw), `${name}.pb: our protobuf is go-tpm-tools' (deterministic) encoding`);
        const pub = unmarshal(TPMT_PUBLIC, blob.publicArea);
        assert.equal(pub.nameAlg, TPM_ALG.SHA256);
        if (name.startsWith('signingkey')) {
          assert.equal(pub.type, TPM_ALG.RSA);
          if (pub.type === TPM_ALG.RSA) {
            assert.equal(toHex(pub.unique), toHex(value(`${name}.modulus`)), `${name}.pb: the imported key`);
            assert.deepEqual(pub.parameters.scheme, { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 });
          }
          assert.equal(blob.pcrs, undefined);
          continue;
        }
        assert.equal(pub.type, TPM_ALG.KEYEDHASH, `${name}.pb: sealed data`);
        if (!name.endsWith('-pcr')) {
          assert.equal(blob.pcrs, undefined);
          assert.equal(pub.authPolicy.length, 0);
          continue;
        }
        // Bound to PCRs 0 and 7 of the SHA-256 bank, at the values the RSA AK quoted in the same run.
        assert.equal(blob.pcrs?.hash, HashAlgo.SHA256);
        const values = blob.pcrs!.pcrs;
        assert.deepEqual([...values.keys()].sort((a, b) => a - b), [0, 7]);
        for (const [i, v] of values) assert.equal(toHex(v), toHex(quoted.pcrs.get(TPM_ALG.SHA256)!.get(i)!), `PCR ${i}`);
        assert.ok((pub.objectAttributes & TPMA_OBJECT.adminWithPolicy) !== 0);
        const ours = policyDigest(TPM_ALG.SHA256, [pcrPolicyStep({ hashAlg: TPM_ALG.SHA256, values }, TPM_ALG.SHA256)]);
        assert.equal(toHex(pub.authPolicy), toHex(ours), `${name}.pb: go-tpm-tools' PolicyPCR digest is the one we compute`);
      }
    }
  });
});
