/**
 * Response codes (Part 2, 6.6): decodeRc for format-zero and format-one codes (with handle,
 * parameter and session numbers), warnings, vendor codes, TPM 1.2 codes and tpm2-tss layered codes;
 * TpmError's fields and message; and an independent cross-check of the decoding against tpm2-tools'
 * `tpm2_rc_decode` when it is installed. (The live check — ReadPublic of an absent persistent
 * handle on swtpm throws TpmError 0x18B naming TPM_RC_HANDLE and handle 1 — is in commands.test.ts.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { decodeRc, TpmError, TpmTransportError, TpmAuthError, TpmDecodeError, TPM_RC, TPM_CC } from '../src/index.js';

describe('errors: decodeRc', () => {
  it('success', () => {
    assert.deepEqual(decodeRc(0), { base: 0, name: 'TPM_RC_SUCCESS', kind: 'success', text: 'TPM_RC_SUCCESS' });
  });

  it('format zero: TPM_RC_INITIALIZE, TPM_RC_FAILURE, TPM_RC_COMMAND_CODE, TPM_RC_NV_DEFINED', () => {
    for (const [rc, name] of [[0x100, 'TPM_RC_INITIALIZE'], [0x101, 'TPM_RC_FAILURE'], [0x143, 'TPM_RC_COMMAND_CODE'], [0x14c, 'TPM_RC_NV_DEFINED']] as const) {
      const d = decodeRc(rc);
      assert.equal(d.kind, 'format-zero');
      assert.equal(d.base, rc);
      assert.equal(d.name, name);
      assert.match(d.text, new RegExp(`^${name}`));
      assert.equal(d.handle ?? d.parameter ?? d.session, undefined);
    }
    assert.match(decodeRc(0x100).text, /not initialized by TPM2_Startup/);
  });

  it('format one with a handle number: 0x18B is TPM_RC_HANDLE on handle 1', () => {
    const d = decodeRc(0x18b);
    assert.equal(d.kind, 'format-one');
    assert.equal(d.base, TPM_RC.HANDLE);
    assert.equal(d.name, 'TPM_RC_HANDLE');
    assert.equal(d.handle, 1);
    assert.equal(d.parameter, undefined);
    assert.equal(d.session, undefined);
    assert.equal(d.text, 'TPM_RC_HANDLE (handle 1): the handle is not correct for the use');
    assert.equal(decodeRc(0x28b).handle, 2);
    assert.equal(decodeRc(0x78b).handle, 7);
  });

  it('format one with a parameter number (P bit, 4-bit number)', () => {
    const d = decodeRc(0x1c4);
    assert.equal(d.base, TPM_RC.VALUE);
    assert.equal(d.parameter, 1);
    assert.match(d.text, /^TPM_RC_VALUE \(parameter 1\)/);
    const s = decodeRc(0x2d5);
    assert.equal(s.base, TPM_RC.SIZE);
    assert.equal(s.parameter, 2);
    assert.equal(decodeRc(0xfc4).parameter, 15);
    assert.equal(decodeRc(0x9db).base, TPM_RC.SIGNATURE);
    assert.equal(decodeRc(0x9db).parameter, 9);
  });

  it('format one with a session number (bit 11 without P)', () => {
    const d = decodeRc(0x98e);
    assert.equal(d.base, TPM_RC.AUTH_FAIL);
    assert.equal(d.session, 1);
    assert.equal(d.handle, undefined);
    assert.match(d.text, /^TPM_RC_AUTH_FAIL \(session 1\): the authorization HMAC check failed/);
    assert.equal(decodeRc(0x9a2).base, TPM_RC.BAD_AUTH);
    assert.equal(decodeRc(0xba2).session, 3);
  });

  it('format one without a number (handle 0) names no position', () => {
    const d = decodeRc(0x084);
    assert.equal(d.base, TPM_RC.VALUE);
    assert.equal(d.text, 'TPM_RC_VALUE: value is out of range or not correct for the context');
  });

  it('warnings: RETRY, YIELDED, TESTING, OBJECT_MEMORY, LOCKOUT, REFERENCE_S0', () => {
    for (const [rc, name] of [[0x922, 'TPM_RC_RETRY'], [0x908, 'TPM_RC_YIELDED'], [0x90a, 'TPM_RC_TESTING'], [0x902, 'TPM_RC_OBJECT_MEMORY'], [0x921, 'TPM_RC_LOCKOUT'], [0x918, 'TPM_RC_REFERENCE_S0']] as const) {
      const d = decodeRc(rc);
      assert.equal(d.kind, 'warning', name);
      assert.equal(d.base, rc);
      assert.equal(d.name, name);
      assert.match(d.text, new RegExp(`^${name} \\(warning\\)`));
    }
  });

  it('unknown codes still decode to their kind and hex', () => {
    const w = decodeRc(0x97f);
    assert.equal(w.kind, 'warning');
    assert.match(w.name, /0x97f/);
    const f = decodeRc(0x0bf);
    assert.equal(f.kind, 'format-one');
    assert.match(f.name, /format-one error 0x0bf/);
  });

  it('vendor codes (T bit) and TPM 1.2 codes', () => {
    const v = decodeRc(0x501);
    assert.equal(v.kind, 'vendor');
    assert.match(v.text, /vendor-defined response code 0x501/);
    const old = decodeRc(0x001);
    assert.equal(old.kind, 'tpm1.2');
    assert.match(old.text, /TPM 1\.2/);
  });

  it('tpm2-tss layered codes: TSS2_BASE_RC_* for software layers, TPM decoding for the resource manager', () => {
    const io = decodeRc(0x000a000a);
    assert.equal(io.kind, 'tss-layer');
    assert.equal(io.layer, 10);
    assert.equal(io.name, 'TSS2_BASE_RC_IO_ERROR');
    assert.match(io.text, /TCTI layer/);
    const bad = decodeRc(0x0008000b);
    assert.equal(bad.name, 'TSS2_BASE_RC_BAD_VALUE');
    assert.match(bad.text, /SAPI layer/);
    const rmt = decodeRc(0x000b0101);
    assert.equal(rmt.kind, 'tss-layer');
    assert.equal(rmt.layer, 11);
    assert.equal(rmt.base, TPM_RC.FAILURE);
    assert.match(rmt.text, /^TPM_RC_FAILURE.*resource manager/);
    const h = decodeRc(0x000b018b);
    assert.equal(h.handle, 1);
    assert.equal(decodeRc(0x00400001).name, 'TSS2_BASE_RC_GENERAL_FAILURE');
    assert.match(decodeRc(0x00400001).text, /software layer 64/);
  });

  it('agrees with tpm2-tools tpm2_rc_decode on kinds and handle/parameter/session numbers', function () {
    let tool = true;
    try {
      execFileSync('tpm2_rc_decode', ['0x100'], { stdio: 'pipe' });
    } catch {
      tool = false;
    }
    if (!tool) this.skip();
    // Parameter numbers stay below 8: tpm2_rc_decode 5.4 reads only 3 bits of N (it decodes 0xfc4 as
    // parameter 7), while Part 2 Table 16 gives the parameter number 4 bits (TPM_RC_1..TPM_RC_F).
    const codes = [0x100, 0x101, 0x143, 0x18b, 0x28b, 0x1c4, 0x2d5, 0x7c4, 0x98e, 0x9a2, 0xba2, 0x084, 0x922, 0x902, 0x908, 0x90a, 0x921, 0x501, 0x0008000b, 0x000a000a, 0x000b0101];
    for (const rc of codes) {
      const out = execFileSync('tpm2_rc_decode', [`0x${rc.toString(16)}`], { encoding: 'utf8' }).trim();
      const d = decodeRc(rc);
      const pos = /:(handle|parameter|session)\((\d+)\):/.exec(out);
      if (pos) {
        const key = pos[1] as 'handle' | 'parameter' | 'session';
        assert.equal(d[key], Number(pos[2]), `${out} vs ${d.text}`);
      } else {
        assert.ok(!(d.handle || d.parameter || d.session), `${out} vs ${d.text}`); // handle 0 = none given
      }
      if (/^tpm:warn/.test(out)) assert.equal(d.kind, 'warning', out);
      if (/Vendor specific/.test(out)) assert.equal(d.kind, 'vendor', out);
      if (/^(sys|tcti|rmt):/.test(out)) assert.equal(d.kind, 'tss-layer', out);
      if (/^tcti:IO failure/.test(out)) assert.equal(d.name, 'TSS2_BASE_RC_IO_ERROR');
      if (/^sys:A parameter has a bad value/.test(out)) assert.equal(d.name, 'TSS2_BASE_RC_BAD_VALUE');
    }
  });
});

describe('errors: error classes', () => {
  it('TpmError carries rc, base, command and a decoded message', () => {
    const e = new TpmError(0x18b, TPM_CC.ReadPublic);
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'TpmError');
    assert.equal(e.rc, 0x18b);
    assert.equal(e.base, TPM_RC.HANDLE);
    assert.equal(e.command, TPM_CC.ReadPublic);
    assert.equal(e.decoded.handle, 1);
    assert.ok(e.is(TPM_RC.HANDLE));
    assert.ok(!e.is(TPM_RC.VALUE));
    assert.equal(e.message, 'TPM2_ReadPublic failed with 0x18b: TPM_RC_HANDLE (handle 1): the handle is not correct for the use');
  });

  it('TpmError for an unknown command code shows the code in hex', () => {
    assert.match(new TpmError(0x922, 0x20000001).message, /^command 0x20000001 failed with 0x922: TPM_RC_RETRY \(warning\)/);
  });

  it('the other error classes are distinct and named', () => {
    const t = new TpmTransportError('gone', 'EPIPE');
    assert.equal(t.name, 'TpmTransportError');
    assert.equal(t.code, 'EPIPE');
    assert.equal(new TpmAuthError('x').name, 'TpmAuthError');
    const d = new TpmDecodeError('bad', 7, 'TPMT_PUBLIC');
    assert.equal(d.name, 'TpmDecodeError');
    assert.equal(d.offset, 7);
    assert.equal(d.expected, 'TPMT_PUBLIC');
    assert.equal(d.message, 'bad (at byte offset 7)');
    assert.ok(!(t instanceof TpmError) && !(d instanceof TpmError));
  });
});
