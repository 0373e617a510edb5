// Sign: a signature over SHA-256(data) by a key the verifier knows the public half of.
import type { KeyObject } from 'node:crypto';
import { CheckList, type StepResult } from './checks.js';
import { signatureVerifies } from './import.js';
import { describeKeyObject, keyObjectTypeMismatch, type KeyType } from './keys.js';

/** Checks SignResponse.signed: RSA PKCS#1 v1.5 or ECDSA (ASN.1 DER) over SHA-256(data) by `publicKey`, of the requested type. */
export function verifySign(signature: Uint8Array, data: Uint8Array, publicKey: KeyObject, keyType: KeyType): StepResult<void> {
  const c = new CheckList();
  const mismatch = keyObjectTypeMismatch(publicKey, keyType);
  const scheme = keyType === 'ecc' ? 'ECDSA (ASN.1 DER)' : 'RSASSA-PKCS1-v1_5';
  if (mismatch !== undefined) {
    c.fail('sign.signature', `the key is not the requested type: ${mismatch}`);
  } else {
    c.expect(
      'sign.signature',
      signatureVerifies(publicKey, data, signature),
      `${scheme} SHA-256 signature over ${data.length} bytes verifies with the ${describeKeyObject(publicKey)} key`,
      `the signature (${signature.length} bytes) is not a ${scheme} SHA-256 signature over the data by the key`,
    );
  }
  return c.result();
}
