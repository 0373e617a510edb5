// Attest: credential activation. MakeCredential is done here, in software, for the EK and the
// AK's name; only the TPM holding that EK, with that AK loaded, can give the secret back.
import { createHash, randomBytes } from 'node:crypto';
import { TPM2B_ENCRYPTED_SECRET, TPM2B_ID_OBJECT, makeCredential, marshal, objectName, type TPMT_PUBLIC } from '@tpmds/tpm2-wire';
import { encodeEncryptedCredential } from '@tpmds/protocol/formats';
import { CheckList, type StepResult } from './checks.js';
import { secretsEqual } from './keys.js';

/** A credential challenge: the request payload, and the secret it must give back (keep it private). */
export interface Challenge {
  /** go-attestation EncryptedCredential JSON (AttestRequest.encryptedCredentials). */
  encryptedCredentials: Uint8Array;
  /** The 32-byte secret sealed in the credential. */
  secret: Uint8Array;
}

/**
 * TPM2_MakeCredential in software (as go-attestation's ActivationParameters.Generate): a fresh
 * 32-byte secret for the AK's name, protected by the EK (`ekPublic` in the TCG EK template, see
 * `ekPublicFromSpki`), encoded as EncryptedCredential JSON with the TPM2B size prefixes.
 */
export function makeChallenge(ekPublic: TPMT_PUBLIC, akPublic: TPMT_PUBLIC, secret: Uint8Array = new Uint8Array(randomBytes(32))): Challenge {
  const made = makeCredential(ekPublic, objectName(akPublic), secret);
  const encryptedCredentials = encodeEncryptedCredential({ credential: marshal(TPM2B_ID_OBJECT, made.credentialBlob), secret: marshal(TPM2B_ENCRYPTED_SECRET, made.encryptedSecret) });
  return { encryptedCredentials, secret };
}

/** SHA-256 of a secret, short: a fingerprint that can be shown without showing the secret. */
export function secretFingerprint(secret: Uint8Array): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 16);
}

/** Checks that the secret the attestor activated is the one sent (compared in constant time). */
export function verifyAttest(challenge: Challenge, returned: Uint8Array): StepResult<void> {
  const c = new CheckList();
  c.expect(
    'attest.secret',
    secretsEqual(challenge.secret, returned),
    'the activated secret matches the one sent: the AK is in the TPM that holds this EK',
    returned.length === challenge.secret.length
      ? 'the activated secret differs from the one sent'
      : `the activated secret is ${returned.length} bytes; ${challenge.secret.length} were sent`,
  );
  return c.result();
}
