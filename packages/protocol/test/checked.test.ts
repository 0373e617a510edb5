/**
 * The wire schemas of the checked codec follow proto/verifier.proto: every `string` field of
 * every message is checked for UTF-8 (google-protobuf would turn bad bytes into "" silently), and
 * a response with a bad string is refused naming the field.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MESSAGE_SCHEMAS, WireFormatError, checkWire } from '../src/proto/index.js';

const PROTO = readFileSync(new URL('../../../proto/verifier.proto', import.meta.url), 'utf8');

describe('checked wire schemas (@tpmds/protocol)', () => {
  it('every string field of proto/verifier.proto is a checked string in MESSAGE_SCHEMAS, and every field is known', () => {
    let messages = 0;
    for (const m of PROTO.matchAll(/^message (\w+) \{([^}]*)\}/gm)) {
      messages++;
      const schema = MESSAGE_SCHEMAS[`verifier.${m[1]}`];
      assert.ok(schema, `verifier.${m[1]} has a schema`);
      for (const f of m[2]!.matchAll(/^\s*(\w+) (\w+) = (\d+);/gm)) {
        const field = schema[Number(f[3])];
        assert.ok(field, `verifier.${m[1]}.${f[2]} (field ${f[3]}) is in the schema`);
        if (f[1] === 'string') assert.equal(field.string, f[2], `verifier.${m[1]}.${f[2]} is checked as a string`);
        else assert.equal(field.string, undefined, `verifier.${m[1]}.${f[2]} is ${f[1]}, not a string`);
      }
    }
    assert.ok(messages >= 20, `${messages} messages read from proto/verifier.proto`);
  });

  it('a QuoteResponse whose eventLogProblem is not UTF-8 is refused, naming the field', () => {
    const bad = new Uint8Array([0x1a, 0x02, 0xff, 0xfe]); // field 3, length 2
    assert.throws(() => checkWire(bad, MESSAGE_SCHEMAS['verifier.QuoteResponse']!, 'verifier.QuoteResponse'), (e: unknown) => e instanceof WireFormatError && /eventLogProblem: not valid UTF-8/.test(e.message));
  });
});
