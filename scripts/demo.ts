/**
 * tpmds demo: starts a provisioned swtpm (EK certificates from a local CA) as
 * the embedded TPM, then shows what the stack does with it, as a readable report.
 * Run with `pnpm demo` (after `bash scripts/setup.sh`).
 */
import { readFileSync } from 'node:fs';
import {
  TPM_ALG, TPM_PT, TPM_RH, algName, certificateMatchesPublic, ekTemplateEccP256, ekTemplateRsa2048, hash,
  openTpm, parseCertificate, pemToDers, publicToKeyObject, signatureToDer, signingKeyTemplate, srkTemplateEccP256,
  toHex, verifyCertificateChain, verifySignature,
} from '@tpmds/tpm2-wire';
import { startSwtpm } from '../packages/tpm2-wire/test/fixtures/swtpm.js';

let failures = 0;
const line = (ok: boolean, what: string, detail = '') => {
  if (!ok) failures++;
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` — ${detail}` : ''}`);
};

console.log('tpmds demo: starting swtpm with a freshly provisioned TPM (EK certificates from a local CA)...');
const sw = await startSwtpm({ transport: 'unix' });
try {
  const tpm = await openTpm(sw.address);
  try {
    console.log(`\nTPM at ${sw.address}`);
    const props = await tpm.getProperties();
    const text = (pt: number) => {
      const v = props.get(pt) ?? 0;
      return String.fromCharCode(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255).replace(/\0/g, '');
    };
    const fw1 = props.get(TPM_PT.FIRMWARE_VERSION_1) ?? 0;
    console.log(`  manufacturer ${text(TPM_PT.MANUFACTURER)}, vendor "${[TPM_PT.VENDOR_STRING_1, TPM_PT.VENDOR_STRING_2].map(text).join('')}", firmware ${fw1 >>> 16}.${fw1 & 0xffff}`);
    console.log(`  spec level ${props.get(TPM_PT.LEVEL)}, revision ${(props.get(TPM_PT.REVISION) ?? 0) / 100}, NV buffer ${props.get(TPM_PT.NV_BUFFER_MAX)} bytes`);
    console.log(`  active PCR banks: ${(await tpm.getActivePcrBanks()).map(algName).join(', ')}`);

    console.log('\nEndorsement keys and certificates');
    const roots = pemToDers(readFileSync(sw.caRootPem, 'utf8'));
    const intermediates = pemToDers(readFileSync(sw.caIntermediatePem, 'utf8'));
    for (const keyType of ['rsa', 'ecc'] as const) {
      const cert = await tpm.readEkCertificate(keyType);
      if (!cert) {
        line(false, `${keyType.toUpperCase()} EK certificate`, 'none in NV');
        continue;
      }
      const parsed = parseCertificate(cert);
      console.log(`  ${keyType.toUpperCase()} EK certificate: issuer "${parsed.issuer}", serial ${parsed.serialNumber}`);
      const chain = await verifyCertificateChain(cert, roots, intermediates);
      line(chain.ok, 'certificate chains to the local CA root', chain.error ?? '');
      const ek = await tpm.createPrimary(TPM_RH.ENDORSEMENT, keyType === 'rsa' ? ekTemplateRsa2048() : ekTemplateEccP256());
      await tpm.flushContext(ek.handle);
      line(certificateMatchesPublic(cert, ek.public), 'EK created from the TCG template has the certificate\'s public key', `name ${toHex(ek.name).slice(0, 20)}…`);
    }

    console.log('\nA TPM-resident signing key');
    const srk = await tpm.createPrimary(TPM_RH.OWNER, srkTemplateEccP256());
    try {
      for (const keyType of ['ecc', 'rsa'] as const) {
        const t0 = performance.now();
        const key = await tpm.create(srk.handle, signingKeyTemplate(keyType));
        const loaded = await tpm.load(srk.handle, key.private, key.public);
        const message = new TextEncoder().encode('hello from tpmds');
        const sig = await tpm.sign(loaded.handle, hash(TPM_ALG.SHA256, message));
        await tpm.flushContext(loaded.handle);
        const ms = (performance.now() - t0).toFixed(0);
        line(verifySignature(key.public, message, sig), `${keyType.toUpperCase()} key signs; the signature verifies in software`, `${ms} ms, DER ${signatureToDer(sig).length} bytes, key ${publicToKeyObject(key.public).asymmetricKeyType}`);
      }
    } finally {
      await tpm.flushContext(srk.handle);
    }
  } finally {
    await tpm.close();
  }
} finally {
  await sw.stop();
}
console.log(failures === 0 ? '\nAll checks passed.' : `\n${failures} check(s) FAILED.`);
process.exitCode = failures === 0 ? 0 : 1;
