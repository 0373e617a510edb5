/**
 * Property-based tests (fast-check) of the decoders, the attack surface of the stack: whatever bytes a
 * TPM, a file or a peer hands us, decoding either succeeds or throws TpmDecodeError — never a
 * RangeError, a TypeError or a hang. Covered: random bytes, mutated and truncated valid encodings,
 * round trips of arbitrary valid values (decode(encode(v)) = v, and anything that decodes re-encodes
 * to the same bytes), and response parsing in execute() through a fake transport that answers with
 * random or half-plausible bytes. Runs are bounded so the file takes a few seconds.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  TpmDecodeError, TpmError, marshal, unmarshal, execute, TPM2, TPM_ALG, TPM_ST, TPM_CAP, TPM_GENERATED_VALUE, HASH_SIZE,
  TPMT_PUBLIC, TPM2B_PUBLIC, TPMS_ATTEST, TPM2B_ATTEST, TPMT_SIGNATURE, TPMS_CAPABILITY_DATA, TPMS_CREATION_DATA, TPM2B_CREATION_DATA,
  TPMT_SENSITIVE, TPM2B_SENSITIVE, TPML_PCR_SELECTION, TPMS_CONTEXT, TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC, TPML_DIGEST_VALUES, TPMT_HA,
  type Codec, type AnyCommandSpec,
} from '../src/index.js';
import { CannedTransport, responseCode, successResponse, withPasswordAuths } from './fixtures/canned-responses.js';

const RUNS = { numRuns: 200 } as const;

// ---- arbitraries of valid values ---------------------------------------------------------

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const bytes = (max: number) => fc.uint8Array({ maxLength: max });
const hashAlg = fc.constantFrom(TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512, TPM_ALG.SM3_256);
const anyAlg = fc.oneof(hashAlg, u16);
const name = bytes(66);
const hashDetail = (scheme: number) => fc.record({ scheme: fc.constant(scheme), hashAlg: anyAlg });
const nullScheme = fc.constant({ scheme: TPM_ALG.NULL });

const pcrSelection = fc.array(fc.record({ hash: anyAlg, pcrSelect: bytes(32) }), { maxLength: 16 });
const clockInfo = fc.record({ clock: u64, resetCount: u32, restartCount: u32, safe: fc.boolean() });
const symDefObject = fc.oneof(
  fc.constant({ algorithm: TPM_ALG.NULL }),
  fc.record({ algorithm: fc.constantFrom(TPM_ALG.AES, TPM_ALG.SM4, TPM_ALG.CAMELLIA), keyBits: u16, mode: u16 }),
);
const kdfScheme = fc.oneof(nullScheme, ...[TPM_ALG.MGF1, TPM_ALG.KDF1_SP800_56A, TPM_ALG.KDF2, TPM_ALG.KDF1_SP800_108].map(hashDetail));
const rsaScheme = fc.oneof(nullScheme, fc.constant({ scheme: TPM_ALG.RSAES }), ...[TPM_ALG.RSASSA, TPM_ALG.RSAPSS, TPM_ALG.OAEP].map(hashDetail));
const eccScheme = fc.oneof(
  nullScheme,
  ...[TPM_ALG.ECDSA, TPM_ALG.ECDH, TPM_ALG.ECSCHNORR, TPM_ALG.SM2, TPM_ALG.ECMQV].map(hashDetail),
  fc.record({ scheme: fc.constant(TPM_ALG.ECDAA), hashAlg: anyAlg, count: u16 }),
);
const keyedHashScheme = fc.oneof(nullScheme, hashDetail(TPM_ALG.HMAC), fc.record({ scheme: fc.constant(TPM_ALG.XOR), hashAlg: anyAlg, kdf: u16 }));
const publicCommon = { nameAlg: anyAlg, objectAttributes: u32, authPolicy: bytes(64) };

const tpmtPublic = fc.oneof(
  fc.record({ type: fc.constant(TPM_ALG.RSA), ...publicCommon, parameters: fc.record({ symmetric: symDefObject, scheme: rsaScheme, keyBits: u16, exponent: u32 }), unique: bytes(512) }),
  fc.record({
    type: fc.constant(TPM_ALG.ECC), ...publicCommon,
    parameters: fc.record({ symmetric: symDefObject, scheme: eccScheme, curveID: u16, kdf: kdfScheme }),
    unique: fc.record({ x: bytes(128), y: bytes(128) }),
  }),
  fc.record({ type: fc.constant(TPM_ALG.KEYEDHASH), ...publicCommon, parameters: fc.record({ scheme: keyedHashScheme }), unique: bytes(64) }),
  fc.record({ type: fc.constant(TPM_ALG.SYMCIPHER), ...publicCommon, parameters: fc.record({ sym: symDefObject }), unique: bytes(64) }),
);

const attestCommon = { magic: fc.oneof(fc.constant(TPM_GENERATED_VALUE), u32), qualifiedSigner: name, extraData: bytes(66), clockInfo, firmwareVersion: u64 };
const tpmsAttest = fc.oneof(
  fc.record({ ...attestCommon, type: fc.constant(TPM_ST.ATTEST_CERTIFY), attested: fc.record({ name, qualifiedName: name }) }),
  fc.record({ ...attestCommon, type: fc.constant(TPM_ST.ATTEST_QUOTE), attested: fc.record({ pcrSelect: pcrSelection, pcrDigest: bytes(64) }) }),
  fc.record({ ...attestCommon, type: fc.constant(TPM_ST.ATTEST_CREATION), attested: fc.record({ objectName: name, creationHash: bytes(64) }) }),
  fc.record({ ...attestCommon, type: fc.constant(TPM_ST.ATTEST_TIME), attested: fc.record({ time: fc.record({ time: u64, clockInfo }), firmwareVersion: u64 }) }),
  fc.record({ ...attestCommon, type: fc.constant(TPM_ST.ATTEST_NV), attested: fc.record({ indexName: name, offset: u16, nvContents: bytes(300) }) }),
  fc.record({ ...attestCommon, type: fc.constant(TPM_ST.ATTEST_COMMAND_AUDIT), attested: fc.record({ auditCounter: u64, digestAlg: anyAlg, auditDigest: bytes(64), commandDigest: bytes(64) }) }),
  fc.record({ ...attestCommon, type: fc.constant(TPM_ST.ATTEST_SESSION_AUDIT), attested: fc.record({ exclusiveSession: fc.boolean(), sessionDigest: bytes(64) }) }),
);

const tpmtHa = fc.constantFrom(TPM_ALG.NULL, ...Object.keys(HASH_SIZE).map(Number)).chain((alg) =>
  fc.record({ hashAlg: fc.constant(alg), digest: fc.uint8Array({ minLength: HASH_SIZE[alg] ?? 0, maxLength: HASH_SIZE[alg] ?? 0 }) }));
const rsaSig = (alg: number) => fc.record({ sigAlg: fc.constant(alg), hash: anyAlg, sig: bytes(512) });
const eccSig = (alg: number) => fc.record({ sigAlg: fc.constant(alg), hash: anyAlg, signatureR: bytes(128), signatureS: bytes(128) });
const tpmtSignature = fc.oneof(
  fc.constant({ sigAlg: TPM_ALG.NULL }),
  rsaSig(TPM_ALG.RSASSA), rsaSig(TPM_ALG.RSAPSS),
  ...[TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.SM2, TPM_ALG.ECSCHNORR].map(eccSig),
  fc.record({ sigAlg: fc.constant(TPM_ALG.HMAC), hmac: tpmtHa }),
);

const list = <T>(a: fc.Arbitrary<T>, max = 20) => fc.array(a, { maxLength: max });
const tpmsCapabilityData = fc.oneof(
  fc.record({ capability: fc.constant(TPM_CAP.ALGS), algorithms: list(fc.record({ alg: u16, algProperties: u32 })) }),
  fc.record({ capability: fc.constant(TPM_CAP.HANDLES), handles: list(u32) }),
  fc.record({ capability: fc.constant(TPM_CAP.COMMANDS), command: list(u32) }),
  fc.record({ capability: fc.constant(TPM_CAP.PP_COMMANDS), ppCommands: list(u32) }),
  fc.record({ capability: fc.constant(TPM_CAP.AUDIT_COMMANDS), auditCommands: list(u32) }),
  fc.record({ capability: fc.constant(TPM_CAP.PCRS), assignedPCR: pcrSelection }),
  fc.record({ capability: fc.constant(TPM_CAP.TPM_PROPERTIES), tpmProperties: list(fc.record({ property: u32, value: u32 })) }),
  fc.record({ capability: fc.constant(TPM_CAP.PCR_PROPERTIES), pcrProperties: list(fc.record({ tag: u32, pcrSelect: bytes(32) })) }),
  fc.record({ capability: fc.constant(TPM_CAP.ECC_CURVES), eccCurves: list(u16) }),
);

const tpmsCreationData = fc.record({
  pcrSelect: pcrSelection, pcrDigest: bytes(64), locality: u8, parentNameAlg: anyAlg, parentName: name, parentQualifiedName: name, outsideInfo: bytes(66),
});

const sensitiveCommon = { authValue: bytes(64), seedValue: bytes(64) };
const tpmtSensitive = fc.oneof(
  fc.record({ sensitiveType: fc.constant(TPM_ALG.RSA), ...sensitiveCommon, sensitive: bytes(512) }),
  fc.record({ sensitiveType: fc.constant(TPM_ALG.ECC), ...sensitiveCommon, sensitive: bytes(128) }),
  fc.record({ sensitiveType: fc.constant(TPM_ALG.KEYEDHASH), ...sensitiveCommon, sensitive: bytes(256) }),
  fc.record({ sensitiveType: fc.constant(TPM_ALG.SYMCIPHER), ...sensitiveCommon, sensitive: bytes(64) }),
);

const tpmsNvPublic = fc.record({ nvIndex: u32, nameAlg: anyAlg, attributes: u32, authPolicy: bytes(64), dataSize: u16 });
const tpmsContext = fc.record({ sequence: u64, savedHandle: u32, hierarchy: u32, contextBlob: bytes(600) });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCodec = Codec<any>;
const cases: { name: string; codec: AnyCodec; value: fc.Arbitrary<unknown> }[] = [
  { name: 'TPMT_PUBLIC', codec: TPMT_PUBLIC, value: tpmtPublic },
  { name: 'TPM2B_PUBLIC', codec: TPM2B_PUBLIC, value: tpmtPublic },
  { name: 'TPMS_ATTEST', codec: TPMS_ATTEST, value: tpmsAttest },
  { name: 'TPM2B_ATTEST', codec: TPM2B_ATTEST, value: tpmsAttest },
  { name: 'TPMT_SIGNATURE', codec: TPMT_SIGNATURE, value: tpmtSignature },
  { name: 'TPMS_CAPABILITY_DATA', codec: TPMS_CAPABILITY_DATA, value: tpmsCapabilityData },
  { name: 'TPMS_CREATION_DATA', codec: TPMS_CREATION_DATA, value: tpmsCreationData },
  { name: 'TPM2B_CREATION_DATA', codec: TPM2B_CREATION_DATA, value: tpmsCreationData },
  { name: 'TPMT_SENSITIVE', codec: TPMT_SENSITIVE, value: tpmtSensitive },
  { name: 'TPM2B_SENSITIVE', codec: TPM2B_SENSITIVE, value: fc.option(tpmtSensitive, { nil: null }) },
  { name: 'TPML_PCR_SELECTION', codec: TPML_PCR_SELECTION, value: pcrSelection },
  { name: 'TPML_DIGEST_VALUES', codec: TPML_DIGEST_VALUES, value: list(tpmtHa, 16) },
  { name: 'TPMT_HA', codec: TPMT_HA as AnyCodec, value: tpmtHa },
  { name: 'TPMS_NV_PUBLIC', codec: TPMS_NV_PUBLIC, value: tpmsNvPublic },
  { name: 'TPM2B_NV_PUBLIC', codec: TPM2B_NV_PUBLIC, value: tpmsNvPublic },
  { name: 'TPMS_CONTEXT', codec: TPMS_CONTEXT, value: tpmsContext },
];

// ---- helpers ------------------------------------------------------------------------------------

/** fc.record builds null-prototype objects; decoded values are plain objects. Compare like with like. */
function plain(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) return v;
  if (Array.isArray(v)) return v.map(plain);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
}

/** Decoding succeeds or throws TpmDecodeError; anything it decodes re-encodes to exactly the same bytes. */
function decodeOnlyTyped(codec: AnyCodec, input: Uint8Array): void {
  let value: unknown;
  try {
    value = unmarshal(codec, input);
  } catch (e) {
    if (e instanceof TpmDecodeError) {
      assert.ok(Number.isInteger(e.offset) && e.offset >= 0 && e.offset <= input.length, `offset ${e.offset} within the input`);
      return;
    }
    throw new Error(`${codec.name}: decoding threw ${String(e)} instead of TpmDecodeError for ${Buffer.from(input).toString('hex')}`);
  }
  assert.deepStrictEqual(marshal(codec, value), input, `${codec.name}: what decodes re-encodes to the same bytes`);
}

/** A valid encoding with some bytes overwritten, inserted or removed (to reach deep decoder paths). */
function mutated(encoding: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(encoding, fc.array(fc.tuple(fc.nat(), u8, fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 4 })).map(([enc, edits]) => {
    let b = Array.from(enc);
    for (const [pos, v, op] of edits) {
      const at = b.length === 0 ? 0 : pos % (b.length + (op === 'insert' ? 1 : 0));
      if (op === 'set' && b.length > 0) b[at] = v;
      else if (op === 'insert') b.splice(at, 0, v);
      else if (op === 'delete' && b.length > 0) b.splice(at, 1);
    }
    return Uint8Array.from(b);
  });
}

// ---- properties ---------------------------------------------------------------------------------

describe('codec properties (fast-check)', () => {
  for (const c of cases) {
    describe(c.name, () => {
      const encoded = c.value.map((v) => marshal(c.codec, v));

      it('round trip: decode(encode(v)) = v', () => {
        fc.assert(fc.property(c.value, (v) => {
          const enc = marshal(c.codec, v);
          assert.deepStrictEqual(plain(unmarshal(c.codec, enc)), plain(v));
        }), RUNS);
      });

      it('every strict prefix of a valid encoding throws TpmDecodeError, and so does a trailing byte', () => {
        fc.assert(fc.property(encoded, fc.nat(), u8, (enc, cut, extra) => {
          const k = cut % enc.length;
          assert.throws(() => unmarshal(c.codec, enc.subarray(0, k)), TpmDecodeError);
          const longer = new Uint8Array(enc.length + 1);
          longer.set(enc);
          longer[enc.length] = extra;
          assert.throws(() => unmarshal(c.codec, longer), TpmDecodeError);
        }), RUNS);
      });

      it('random bytes: success or TpmDecodeError only', () => {
        fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => decodeOnlyTyped(c.codec, b)), RUNS);
      });

      it('mutated valid encodings: success or TpmDecodeError only', () => {
        fc.assert(fc.property(mutated(encoded), (b) => decodeOnlyTyped(c.codec, b)), RUNS);
      });
    });
  }
});

describe('codec properties: well-formed wire data (fast-check)', () => {
  // Random bytes rarely get past a count or a size field; these inputs are shaped like the wire
  // format (counts and sizes consistent, contents arbitrary), so they reach the value checks.
  it('TPML_PCR_SELECTION: any sizeofSelect (0-255) either decodes and re-encodes identically or is a TpmDecodeError', () => {
    const selection = fc.tuple(u16, u8).chain(([hash, n]) => fc.uint8Array({ minLength: n, maxLength: n }).map((sel) => Uint8Array.from([hash >> 8, hash & 0xff, n, ...sel])));
    const wire = fc.array(selection, { maxLength: 4 }).map((entries) => Uint8Array.from([0, 0, 0, entries.length, ...entries.flatMap((e) => [...e])]));
    fc.assert(fc.property(wire, (b) => decodeOnlyTyped(TPML_PCR_SELECTION, b)), RUNS);
  });

  it('TPM2B_* inside a structure: any size field (0-0xffff) with that many bytes decodes consistently', () => {
    // TPMS_NV_PUBLIC with an authPolicy of arbitrary declared size: sizes above TPM2B_DIGEST's 64 are refused on decode as on encode.
    const wire = fc.tuple(fc.uint8Array({ minLength: 10, maxLength: 10 }), fc.integer({ min: 0, max: 300 }), u16).chain(([head, n, dataSize]) =>
      fc.uint8Array({ minLength: n, maxLength: n }).map((policy) => Uint8Array.from([...head, n >> 8, n & 0xff, ...policy, dataSize >> 8, dataSize & 0xff])));
    fc.assert(fc.property(wire, (b) => decodeOnlyTyped(TPMS_NV_PUBLIC, b)), RUNS);
  });
});

// ---- response parsing in execute() ---------------------------------------------------------------

/** Commands with rich responses, and a way to call each (handles and parameters are irrelevant here). */
const commands: { spec: AnyCommandSpec; handles: Record<string, number>; params: Record<string, unknown> }[] = [
  { spec: TPM2.GetCapability, handles: {}, params: { capability: 0, property: 0, propertyCount: 1 } },
  { spec: TPM2.ReadPublic, handles: { objectHandle: 0x81000001 }, params: {} },
  { spec: TPM2.PCR_Read, handles: {}, params: { pcrSelectionIn: [] } },
  { spec: TPM2.CreatePrimary, handles: { primaryHandle: 0x40000001 }, params: { inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: { type: TPM_ALG.KEYEDHASH, nameAlg: TPM_ALG.SHA256, objectAttributes: 0, authPolicy: new Uint8Array(0), parameters: { scheme: { scheme: TPM_ALG.NULL } }, unique: new Uint8Array(0) }, outsideInfo: new Uint8Array(0), creationPCR: [] } },
  { spec: TPM2.Sign, handles: { keyHandle: 0x80000000 }, params: { digest: new Uint8Array(32), inScheme: { scheme: TPM_ALG.NULL }, validation: { tag: 0x8024, hierarchy: 0x40000007, digest: new Uint8Array(0) } } },
  { spec: TPM2.Quote, handles: { signHandle: 0x80000000 }, params: { qualifyingData: new Uint8Array(0), inScheme: { scheme: TPM_ALG.NULL }, PCRselect: [] } },
  { spec: TPM2.NV_ReadPublic, handles: { nvIndex: 0x01c00002 }, params: {} },
  { spec: TPM2.ContextSave, handles: { saveHandle: 0x80000000 }, params: {} },
  { spec: TPM2.GetRandom, handles: {}, params: { bytesRequested: 8 } },
];

async function parseOnlyTyped(cmd: (typeof commands)[number], response: Uint8Array): Promise<void> {
  try {
    await execute(new CannedTransport(response), cmd.spec, cmd.handles, cmd.params, { resolveName: async () => new Uint8Array(0) });
  } catch (e) {
    if (e instanceof TpmDecodeError) return;
    if (e instanceof TpmError && e.rc !== 0 && e.rc === responseCode(response)) return;
    throw new Error(`${cmd.spec.name}: response parsing threw ${String(e)} for ${Buffer.from(response).toString('hex')}`);
  }
}

describe('execute() response parsing (fast-check)', () => {
  const command = fc.constantFrom(...commands);

  it('random bytes: success, TpmDecodeError, or TpmError for the rc in the header', async () => {
    await fc.assert(fc.asyncProperty(command, fc.uint8Array({ maxLength: 300 }), (cmd, b) => parseOnlyTyped(cmd, b)), RUNS);
  });

  it('a well-framed success response with a random body: success or TpmDecodeError', async () => {
    await fc.assert(fc.asyncProperty(command, fc.constantFrom(TPM_ST.NO_SESSIONS, TPM_ST.SESSIONS), fc.uint8Array({ maxLength: 400 }), (cmd, tag, body) =>
      parseOnlyTyped(cmd, successResponse(tag, body))), { numRuns: 600 });
  });

  it('a valid response mutated or truncated: success, TpmDecodeError or TpmError', async () => {
    const valid = fc.tuple(command, tpmsCapabilityData, tpmtPublic, tpmtSignature).map(([cmd, cap, pub, sig]) => {
      const values: Record<string, Record<string, unknown>> = {
        TPM2_GetCapability: { moreData: false, capabilityData: cap },
        TPM2_ReadPublic: { outPublic: pub, name: new Uint8Array(34), qualifiedName: new Uint8Array(34) },
        TPM2_Sign: { signature: sig },
        TPM2_GetRandom: { randomBytes: new Uint8Array(8) },
      };
      const v = values[cmd.spec.name];
      if (!v) return { cmd: commands[0]!, bytes: successResponse(TPM_ST.NO_SESSIONS, marshal(TPM2.GetCapability.response, values.TPM2_GetCapability as never)) };
      const params = marshal(cmd.spec.response, v as never);
      const withAuth = cmd.spec.handles.some((h) => h.auth);
      if (!withAuth) return { cmd, bytes: successResponse(TPM_ST.NO_SESSIONS, params) };
      return { cmd, bytes: successResponse(TPM_ST.SESSIONS, withPasswordAuths(params, 1)) };
    });
    // The unmutated responses parse (the generator is right) ...
    await fc.assert(fc.asyncProperty(valid, async ({ cmd, bytes: b }) => {
      await execute(new CannedTransport(b), cmd.spec, cmd.handles, cmd.params);
    }), { numRuns: 100 });
    // ... and damaged ones only ever fail with typed errors.
    await fc.assert(fc.asyncProperty(valid, fc.array(fc.tuple(fc.nat(), u8), { minLength: 1, maxLength: 3 }), fc.nat(), async ({ cmd, bytes: b }, edits, cut) => {
      const m = b.slice(0, Math.max(10, b.length - (cut % 8)));
      for (const [pos, v] of edits) m[pos % m.length] = v;
      await parseOnlyTyped(cmd, m);
    }), RUNS);
  });
});
