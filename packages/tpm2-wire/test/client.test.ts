/**
 * Layers 3 and 6 without a TPM: execute() framing (command bytes checked against tpm2-tools' own
 * GetCapability command and hand-built password authorizations; response framing errors), and the
 * Tpm client's loops and conveniences against a scripted transport (getRandom when the TPM returns
 * short, readPcrs when it returns at most 8 PCRs, NV_Read chunking, GetCapability paging,
 * readEkCertificate's padding trim and absent index, a TPM that lies about a Name).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  TPMA_NV,
  Tpm, execute, TPM2, TpmDecodeError, TpmError, TpmAuthError, TPM_ALG, TPM_CAP, TPM_CC, TPM_PT, TPM_RH, TPM_ST, TPM_RC,
  fromHex, toHex, objectName, srkTemplateEccP256, pcrSelection, indicesOf, passwordSession, type TPMT_PUBLIC,
} from '../src/index.js';
import { TESTDATA_URL } from './fixtures/testdata.js';
import { ScriptedTransport, decodeCommand, okResponse, rcResponse, getRandomResponse } from './support/fake-tpm.js';

describe('execute(): command framing', () => {
  it('GetCapability(TPM_PROPERTIES, PT_FIXED, 127) is byte-identical to tpm2-tools\' command', async () => {
    const expected = new Uint8Array(readFileSync(new URL('tpm2-tools/get-capability-tpm-prop-fixed.bin', TESTDATA_URL)));
    const t = new ScriptedTransport(() => okResponse(TPM2.GetCapability, { moreData: false, capabilityData: { capability: TPM_CAP.TPM_PROPERTIES, tpmProperties: [] } }));
    await execute(t, TPM2.GetCapability, {}, { capability: TPM_CAP.TPM_PROPERTIES, property: TPM_PT.FAMILY_INDICATOR, propertyCount: 127 });
    assert.equal(toHex(t.sent[0]!), toHex(expected));
  });

  it('a handle that needs authorization gets a password session with the entity\'s authValue', async () => {
    const t = new ScriptedTransport(() => okResponse(TPM2.DictionaryAttackLockReset, {}));
    await execute(t, TPM2.DictionaryAttackLockReset, { lockHandle: { handle: TPM_RH.LOCKOUT, auth: fromHex('616263') } }, {});
    // tag SESSIONS, size 30, DictionaryAttackLockReset, TPM_RH_LOCKOUT, authSize 12: TPM_RS_PW, empty nonce, continueSession, hmac "abc"
    assert.equal(toHex(t.sent[0]!), '8002' + '0000001e' + '00000139' + '4000000a' + '0000000c' + '40000009' + '0000' + '01' + '0003616263');
  });

  it('an explicit password session overrides the entity\'s auth; commands without auth handles send no session', async () => {
    const t = new ScriptedTransport((c) => (c.code === TPM_CC.PCR_Extend ? okResponse(TPM2.PCR_Extend, {}) : getRandomResponse(4)));
    await execute(t, TPM2.PCR_Extend, { pcrHandle: 16 }, { digests: [] }, { sessions: [passwordSession(fromHex('ff'))] });
    assert.equal(toHex(t.sent[0]!.subarray(10)), '00000010' + '0000000a' + '40000009' + '0000' + '01' + '0001ff' + '00000000');
    await execute(t, TPM2.GetRandom, {}, { bytesRequested: 4 });
    assert.equal(toHex(t.sent[1]!), '80010000000c0000017b0004');
  });

  it('a missing handle is a TypeError before anything is sent', async () => {
    const t = new ScriptedTransport(() => rcResponse(0));
    await assert.rejects(execute(t, TPM2.ReadPublic, {} as never, {}), /TPM2_ReadPublic: handle objectHandle is missing/);
    assert.equal(t.sent.length, 0);
  });
});

describe('execute(): response framing', () => {
  const run = (rsp: Uint8Array) => execute(new ScriptedTransport(() => rsp), TPM2.GetRandom, {}, { bytesRequested: 4 });
  const runAuth = (rsp: Uint8Array) => execute(new ScriptedTransport(() => rsp), TPM2.PCR_Extend, { pcrHandle: 16 }, { digests: [] });

  it('a non-zero rc is a TpmError for that command', async () => {
    await assert.rejects(run(rcResponse(0x1c4)), (e: Error) => e instanceof TpmError && e.rc === 0x1c4 && e.command === TPM_CC.GetRandom && /^TPM2_GetRandom failed/.test(e.message));
  });

  it('a size field that disagrees with the bytes received is a TpmDecodeError', async () => {
    const rsp = getRandomResponse(4);
    await assert.rejects(run(rsp.subarray(0, rsp.length - 1)), (e: Error) => e instanceof TpmDecodeError && /response size field 16 but 15 bytes received/.test(e.message));
    await assert.rejects(run(new Uint8Array(5)), TpmDecodeError);
  });

  it('an unknown response tag, or sessions missing from the response, is a TpmDecodeError', async () => {
    const bad = getRandomResponse(4);
    bad[1] = 0x04;
    await assert.rejects(run(bad), /unexpected response tag 0x8004/);
    const noSessions = fromHex('80010000000a00000000');
    await assert.rejects(runAuth(noSessions), /response has no sessions although the command had 1/);
  });

  it('trailing bytes after the response parameters or after the auth area are a TpmDecodeError', async () => {
    const extra = fromHex('80010000001000000000' + '0002aabb' + 'ccdd');
    await assert.rejects(run(extra), (e: Error) => e instanceof TpmDecodeError && /trailing/.test(e.message));
    const ok = okResponse(TPM2.PCR_Extend, {});
    const longer = new Uint8Array(ok.length + 1);
    longer.set(ok);
    new DataView(longer.buffer).setUint32(2, longer.length);
    await assert.rejects(runAuth(longer), TpmDecodeError);
    await runAuth(ok);
  });
});

describe('Tpm client against a scripted TPM', () => {
  it('getRandom(n) is exactly n bytes even when the TPM returns fewer than asked', async () => {
    const t = new ScriptedTransport((c) => getRandomResponse(Math.min(10, (c.bytes[10]! << 8) | c.bytes[11]!)));
    const tpm = new Tpm(t);
    assert.equal((await tpm.getRandom(95)).length, 95);
    assert.equal(t.sent.length, 10);
    assert.deepEqual(t.sent.map((c) => (c[10]! << 8) | c[11]!), [64, 64, 64, 64, 55, 45, 35, 25, 15, 5]);
    assert.equal((await tpm.getRandom(0)).length, 0);
    assert.equal(t.sent.length, 10, 'getRandom(0) sends nothing');
  });

  it('getRandom stops on a TPM that returns no bytes (no endless loop)', async () => {
    const tpm = new Tpm(new ScriptedTransport(() => getRandomResponse(0)));
    await assert.rejects(tpm.getRandom(8), /returned no bytes/);
  });

  it('readPcrs keeps asking until every selected PCR is read (TPMs return at most 8 per call)', async () => {
    const t = new ScriptedTransport((c) => {
      const { params } = decodeCommand(TPM2.PCR_Read, c.bytes);
      const asked = indicesOf((params.pcrSelectionIn as { pcrSelect: Uint8Array }[])[0]!.pcrSelect);
      const served = asked.slice(0, 8);
      return okResponse(TPM2.PCR_Read, {
        pcrUpdateCounter: 1,
        pcrSelectionOut: pcrSelection(TPM_ALG.SHA256, served),
        pcrValues: served.map((i) => new Uint8Array(32).fill(i)),
      });
    });
    const pcrs = await new Tpm(t).readPcrs(TPM_ALG.SHA256);
    assert.equal(pcrs.size, 24);
    for (const [i, v] of pcrs) assert.equal(v[0], i);
    assert.equal(t.sent.length, 3);
  });

  it('readPcrs says so when a bank is not allocated', async () => {
    const t = new ScriptedTransport(() => okResponse(TPM2.PCR_Read, { pcrUpdateCounter: 1, pcrSelectionOut: pcrSelection(TPM_ALG.SHA384, []), pcrValues: [] }));
    await assert.rejects(new Tpm(t).readPcrs(TPM_ALG.SHA384, [0]), /no PCR values for bank c: is the bank allocated\?/);
  });

  it('nvRead chunks by TPM_PT_NV_BUFFER_MAX (read once) and reassembles', async () => {
    const content = Uint8Array.from({ length: 250 }, (_, i) => i);
    const reads: [number, number][] = [];
    const t = new ScriptedTransport((c) => {
      if (c.code === TPM_CC.GetCapability) {
        return okResponse(TPM2.GetCapability, { moreData: false, capabilityData: { capability: TPM_CAP.TPM_PROPERTIES, tpmProperties: [{ property: TPM_PT.NV_BUFFER_MAX, value: 100 }] } });
      }
      if (c.code === TPM_CC.NV_ReadPublic) {
        return okResponse(TPM2.NV_ReadPublic, { nvPublic: { nvIndex: 0x01000001, nameAlg: TPM_ALG.SHA256, attributes: 0, authPolicy: new Uint8Array(0), dataSize: 250 }, nvName: new Uint8Array(34) });
      }
      const { handles, params } = decodeCommand(TPM2.NV_Read, c.bytes);
      assert.deepEqual(handles, [0x01000001, 0x01000001], 'authorized by the index itself by default');
      const { size, offset } = params as { size: number; offset: number };
      reads.push([offset, size]);
      return okResponse(TPM2.NV_Read, { data: content.slice(offset, offset + size) });
    });
    const tpm = new Tpm(t);
    assert.deepEqual(await tpm.nvRead(0x01000001), content);
    assert.deepEqual(reads, [[0, 100], [100, 100], [200, 50]]);
    assert.deepEqual(await tpm.nvRead(0x01000001, { offset: 95, size: 10 }), content.slice(95, 105));
    assert.deepEqual(reads.slice(3), [[95, 10]]);
    assert.equal(t.codes().filter((c) => c === TPM_CC.GetCapability).length, 1, 'NV_BUFFER_MAX is asked once');
  });

  it('readEkCertificate (readNvCertificate) trims NV padding after the DER certificate, and is null when the index is absent or never written', async () => {
    const der = fromHex('3003020101');
    const padded = new Uint8Array(12);
    padded.set(der);
    padded.fill(0xff, der.length);
    let present = true;
    let attributes = TPMA_NV.WRITTEN | TPMA_NV.AUTHREAD;
    const t = new ScriptedTransport((c) => {
      if (c.code === TPM_CC.NV_ReadPublic) {
        if (!present) return rcResponse(0x18b);
        return okResponse(TPM2.NV_ReadPublic, { nvPublic: { nvIndex: 0x01c00002, nameAlg: TPM_ALG.SHA256, attributes, authPolicy: new Uint8Array(0), dataSize: padded.length }, nvName: new Uint8Array(34) });
      }
      if (c.code === TPM_CC.GetCapability) return okResponse(TPM2.GetCapability, { moreData: false, capabilityData: { capability: TPM_CAP.TPM_PROPERTIES, tpmProperties: [] } });
      return okResponse(TPM2.NV_Read, { data: padded });
    });
    const tpm = new Tpm(t);
    assert.equal(toHex((await tpm.readEkCertificate('rsa'))!), '3003020101');
    attributes = TPMA_NV.AUTHREAD;
    assert.equal(await tpm.readEkCertificate('rsa'), null, 'defined, never written');
    present = false;
    assert.equal(await tpm.readEkCertificate('ecc'), null);
  });

  it('readPublic refuses a public area whose Name does not match (a TPM or bus that lies)', async () => {
    const pub = { ...srkTemplateEccP256(), unique: { x: new Uint8Array(32).fill(1), y: new Uint8Array(32).fill(2) } } as TPMT_PUBLIC;
    const name = objectName(pub);
    const forged = name.slice();
    forged[5]! ^= 1;
    let answer = name;
    const tpm = new Tpm(new ScriptedTransport(() => okResponse(TPM2.ReadPublic, { outPublic: pub, name: answer, qualifiedName: new Uint8Array(34) })));
    assert.equal(toHex((await tpm.readPublic(0x81000001)).name), toHex(name));
    answer = forged;
    await assert.rejects(tpm.readPublic(0x81000001), (e: Error) => e instanceof TpmAuthError && /the Name does not match the public area/.test(e.message));
  });

  it('getHandles pages through moreData and keeps only the asked handle type', async () => {
    const all = [0x81000001, 0x81000002, 0x81010001, 0x81010002, 0x81800000];
    const t = new ScriptedTransport((c) => {
      const { params } = decodeCommand(TPM2.GetCapability, c.bytes);
      const from = params.property as number;
      const page = all.filter((h) => h >= from).slice(0, 2);
      return okResponse(TPM2.GetCapability, { moreData: all.filter((h) => h >= from).length > 2, capabilityData: { capability: TPM_CAP.HANDLES, handles: [...page, ...(page.length < 2 ? [0x01000000] : [])] } });
    });
    const handles = await new Tpm(t).getHandles(0x81000000);
    assert.deepEqual(handles, all);
    assert.equal(t.sent.length, 3);
  });

  it('getCommands reduces TPMA_CC to command codes; getProperties merges fixed and variable groups', async () => {
    const t = new ScriptedTransport((c) => {
      const { params } = decodeCommand(TPM2.GetCapability, c.bytes);
      if (params.capability === TPM_CAP.COMMANDS) {
        return okResponse(TPM2.GetCapability, { moreData: false, capabilityData: { capability: TPM_CAP.COMMANDS, command: [0x0440011f, 0x0202017b] } });
      }
      const fixed = (params.property as number) < TPM_PT.PERMANENT;
      return okResponse(TPM2.GetCapability, {
        moreData: false,
        capabilityData: { capability: TPM_CAP.TPM_PROPERTIES, tpmProperties: fixed ? [{ property: TPM_PT.FAMILY_INDICATOR, value: 0x322e3000 }] : [{ property: TPM_PT.LOCKOUT_COUNTER, value: 0 }] },
      });
    });
    const tpm = new Tpm(t);
    assert.deepEqual(await tpm.getCommands(), [TPM_CC.NV_UndefineSpaceSpecial, TPM_CC.GetRandom]);
    const props = await tpm.getProperties();
    assert.deepEqual([...props.keys()], [TPM_PT.FAMILY_INDICATOR, TPM_PT.LOCKOUT_COUNTER]);
  });

  it('TPM errors from the client carry rc and command; the transport is closed by close()', async () => {
    const t = new ScriptedTransport(() => rcResponse(TPM_RC.LOCKOUT));
    const tpm = new Tpm(t);
    await assert.rejects(tpm.sign(0x80000000, new Uint8Array(32)), (e: Error) => e instanceof TpmError && e.rc === TPM_RC.LOCKOUT && e.command === TPM_CC.Sign);
    await tpm.close();
    assert.ok(t.closed);
  });

  it('pcrSelection / indicesOf', () => {
    assert.deepEqual(pcrSelection(TPM_ALG.SHA256, [0, 7, 16, 23]), [{ hash: TPM_ALG.SHA256, pcrSelect: fromHex('810081') }]);
    assert.deepEqual(pcrSelection(TPM_ALG.SHA1, []), [{ hash: TPM_ALG.SHA1, pcrSelect: fromHex('000000') }]);
    assert.equal(pcrSelection(TPM_ALG.SHA1, [31])[0]!.pcrSelect.length, 4);
    assert.throws(() => pcrSelection(TPM_ALG.SHA1, [256]), /PCR index 256 is out of range/);
    assert.throws(() => pcrSelection(TPM_ALG.SHA1, [-1]), /out of range/);
    assert.deepEqual(indicesOf(fromHex('810081')), [0, 7, 16, 23]);
    assert.deepEqual(indicesOf(new Uint8Array(0)), []);
    assert.equal(TPM_ST.SESSIONS, 0x8002);
  });
});
