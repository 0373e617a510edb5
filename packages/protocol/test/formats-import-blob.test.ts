import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FormatError, HashAlgo, decodeImportBlob, encodeImportBlob } from '../src/formats/index.js';
import type { ImportBlob } from '../src/formats/index.js';

const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// Expected bytes produced by `protoc --encode=tpm.ImportBlob proto/tpm.proto` (libprotoc 3.21.12)
// from the text-format messages in the test names.
const WITH_PCRS =
  '0a0201021201031a030405062210080b120608071202ffff120408001200'; // pcrs { hash: SHA256 pcrs {7: ffff} pcrs {0: ""} }
const WITHOUT_PCRS = '0a0201021201031a03040506';

describe('formats: go-tpm-tools tpm.ImportBlob', () => {
  it('encodes like protoc: duplicate, encrypted_seed, public_area, pcrs {hash, map}', () => {
    const blob: ImportBlob = {
      duplicate: hex('0102'),
      encryptedSeed: hex('03'),
      publicArea: hex('040506'),
      pcrs: { hash: HashAlgo.SHA256, pcrs: new Map([[7, hex('ffff')], [0, new Uint8Array(0)]]) },
    };
    assert.equal(toHex(encodeImportBlob(blob)), WITH_PCRS);
    const { pcrs: _ignored, ...noPcrs } = blob;
    assert.equal(toHex(encodeImportBlob(noPcrs)), WITHOUT_PCRS);
  });

  it('decodes protoc output, telling an absent pcrs field from an empty one', () => {
    const d = decodeImportBlob(hex(WITH_PCRS));
    assert.deepEqual(d.duplicate, hex('0102'));
    assert.deepEqual(d.encryptedSeed, hex('03'));
    assert.deepEqual(d.publicArea, hex('040506'));
    assert.equal(d.pcrs?.hash, HashAlgo.SHA256);
    assert.deepEqual([...d.pcrs!.pcrs.entries()].sort(([a], [b]) => a - b), [[0, new Uint8Array(0)], [7, hex('ffff')]]);
    assert.equal(decodeImportBlob(hex(WITHOUT_PCRS)).pcrs, undefined);
    const empty = decodeImportBlob(hex('2200'));
    assert.deepEqual(empty.pcrs, { hash: HashAlgo.HASH_INVALID, pcrs: new Map() });
    assert.deepEqual(empty.duplicate, new Uint8Array(0));
  });

  it('round-trips all banks and all 24 PCRs', () => {
    for (const hash of [HashAlgo.SHA1, HashAlgo.SHA256, HashAlgo.SHA384, HashAlgo.SHA512]) {
      const pcrs = new Map(Array.from({ length: 24 }, (_, i) => [i, randomBytes(32)] as [number, Uint8Array]));
      const blob: ImportBlob = { duplicate: randomBytes(300), encryptedSeed: randomBytes(256), publicArea: randomBytes(80), pcrs: { hash, pcrs } };
      const d = decodeImportBlob(encodeImportBlob(blob));
      assert.deepEqual(d.duplicate, new Uint8Array(blob.duplicate));
      assert.deepEqual(d.pcrs?.hash, hash);
      for (const [i, v] of pcrs) assert.deepEqual(d.pcrs?.pcrs.get(i), new Uint8Array(v));
    }
  });

  it('skips unknown fields', () => {
    const d = decodeImportBlob(hex(WITHOUT_PCRS + '4801' + '5a0141'));
    assert.deepEqual(d.publicArea, hex('040506'));
  });

  it('rejects malformed bytes with a FormatError naming the field', () => {
    const cases: [string, string][] = [
      ['0aff', 'ImportBlob.duplicate'], // length past the end
      ['0800', 'ImportBlob.duplicate'], // wrong wire type
      ['2205080b1201', 'ImportBlob.pcrs'], // truncated nested message
      ['2204120208ff', 'ImportBlob.pcrs.pcrs'], // map entry with a truncated varint
      ['0b0c', 'ImportBlob.duplicate'], // a group where bytes are expected
      ['4b0c', 'ImportBlob.9'], // groups are refused
      ['ff', 'ImportBlob'],
    ];
    for (const [h, field] of cases) {
      assert.throws(
        () => decodeImportBlob(hex(h)),
        (e: unknown) => e instanceof FormatError && e.field === field,
        `${h} -> ${field}`,
      );
    }
  });

  it('stays fast and typed on random garbage (google-protobuf alone can spin for seconds)', () => {
    // This input made google-protobuf 3.21 spin for 4 s before the wire pre-check existed.
    const slow = hex('22f296875c62c138dc2426e015dc79432663d67a41bbbe535e16a426414f28f04869196c0f4f0be2ee0a982d933184');
    const t0 = Date.now();
    assert.throws(() => decodeImportBlob(slow), FormatError);
    for (let i = 0; i < 3000; i++) {
      try {
        decodeImportBlob(randomBytes(1 + (i % 64)));
      } catch (e) {
        assert.ok(e instanceof FormatError, String(e));
      }
    }
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  });
});
