/**
 * The one generic command executor (Part 1, 18 "Command/Response Structure";
 * Part 3, 5 "Command Processing"): marshals handles, the authorization area and
 * parameters from a `CommandSpec`, runs every session through the
 * AuthSession protocol (cpHash/rpHash, HMACs, parameter encryption), sends the
 * command in one piece and decodes the response.
 */
import { Reader } from '../bytes/reader.js';
import { Writer } from '../bytes/writer.js';
import { concatBytes, u32be } from '../bytes/hex.js';
import { TpmDecodeError } from '../bytes/errors.js';
import { TPMA_SESSION, TPM_HT, TPM_ST } from '../types/constants.js';
import { TPMS_AUTH_COMMAND, TPMS_AUTH_RESPONSE } from '../types/structures.js';
import { TpmError } from '../errors/index.js';
import { hash } from '../crypto/hash.js';
import { PasswordSession, type AuthEntity, type AuthSession, type CommandContext } from '../sessions/session.js';
import type { Transport } from '../transport/transport.js';
import type { AnyCommandSpec, HandlesOf, ParamsOf, ResponseOf } from './spec.js';

/** A TPM entity: its handle, and optionally its Name and authValue. */
export interface TpmEntity {
  handle: number;
  /** Known Name (saves a ReadPublic when an HMAC or policy session needs it). */
  name?: Uint8Array;
  /** authValue used by password and HMAC sessions (empty by default). */
  auth?: Uint8Array;
}
/** A handle as a number, or an entity with Name and auth. */
export type HandleRef = number | TpmEntity;

export interface ExecuteOptions {
  /**
   * Sessions by position: entry i authorizes the i-th handle that needs
   * authorization (a password session with the entity's auth is used when
   * missing); entries past the authorized handles are extra sessions that
   * only encrypt or audit. At most three sessions in all.
   */
  sessions?: readonly (AuthSession | undefined)[];
  /** Looks up the Name of a transient, persistent or NV handle (e.g. with ReadPublic). */
  resolveName?: (handle: number) => Promise<Uint8Array>;
}

function entityOf(ref: HandleRef): TpmEntity {
  return typeof ref === 'number' ? { handle: ref } : ref;
}

/** Names that are the handle itself (Part 1, 16): PCRs, sessions, permanent handles. */
function isSelfNamed(handle: number): boolean {
  const ht = handle >>> 24;
  return ht === TPM_HT.PCR || ht === TPM_HT.HMAC_SESSION || ht === TPM_HT.POLICY_SESSION || ht === TPM_HT.PERMANENT;
}

/** Execute one command. Throws `TpmError` for a TPM error response, `TpmAuthError` for a response that fails authentication. */
export async function execute<C extends AnyCommandSpec>(
  transport: Transport,
  spec: C,
  handles: Record<HandlesOf<C>, HandleRef>,
  params: ParamsOf<C>,
  opts: ExecuteOptions = {},
): Promise<ResponseOf<C>> {
  const refs = handles as Record<string, HandleRef>;
  const entities = spec.handles.map((h) => {
    const ref = refs[h.name];
    if (ref === undefined) throw new TypeError(`${spec.name}: handle ${h.name} is missing`);
    return entityOf(ref);
  });
  const nameCache = new Map<number, Promise<Uint8Array>>();
  const knownName = (e: TpmEntity): Uint8Array | undefined => e.name ?? (isSelfNamed(e.handle) ? u32be(e.handle) : undefined);
  const nameOf = (e: TpmEntity): Promise<Uint8Array> => {
    const known = knownName(e);
    if (known) return Promise.resolve(known);
    let p = nameCache.get(e.handle);
    if (!p) {
      if (!opts.resolveName) throw new TypeError(`${spec.name}: the Name of handle 0x${e.handle.toString(16)} is needed but unknown`);
      p = opts.resolveName(e.handle);
      nameCache.set(e.handle, p);
    }
    return p;
  };

  // Sessions: one per authorized handle, then extras.
  const authIdx = spec.handles.flatMap((h, i) => (h.auth ? [i] : []));
  const given = opts.sessions ?? [];
  const sessions: AuthSession[] = authIdx.map((_, k) => given[k] ?? new PasswordSession());
  for (let k = authIdx.length; k < given.length; k++) {
    const s = given[k];
    if (s) sessions.push(s);
  }
  if (sessions.length > 3) throw new TypeError(`${spec.name}: at most three sessions are allowed, got ${sessions.length}`);
  const authEntities: (AuthEntity | undefined)[] = sessions.map((_, k) => {
    if (k >= authIdx.length) return undefined;
    const e = entities[authIdx[k]!]!;
    return { handle: e.handle, auth: e.auth ?? new Uint8Array(0), name: () => nameOf(e) };
  });

  // Parameter encryption applies only where the first parameter is a TPM2B (Part 1, 21.1):
  // elsewhere the decrypt/encrypt attributes are dropped for this command.
  const firstParamIsTpm2b = firstField(spec.params.fields)?.isTpm2b === true;
  const firstResponseIsTpm2b = firstField(spec.response.fields)?.isTpm2b === true;
  const mask = 0xff & ~(firstParamIsTpm2b ? 0 : TPMA_SESSION.decrypt) & ~(firstResponseIsTpm2b ? 0 : TPMA_SESSION.encrypt);
  for (const s of sessions) s.prepare?.(mask);

  // Parameters, with the first one encrypted when a session asks for it.
  let paramBytes = (() => {
    const w = new Writer();
    spec.params.encode(w, params);
    return w.finish();
  })();
  const decryptSession = sessions.find((s) => s.attributes & TPMA_SESSION.decrypt);
  const encryptSession = sessions.find((s) => s.attributes & TPMA_SESSION.encrypt);
  const entityOfSession = (s: AuthSession) => authEntities[sessions.indexOf(s)];
  if (decryptSession) {
    if (!decryptSession.encryptParameter) throw new TypeError(`${spec.name}: session 0x${decryptSession.handle.toString(16)} cannot encrypt parameters`);
    paramBytes = transformFirstTpm2b(paramBytes, (d) => decryptSession.encryptParameter!(d, entityOfSession(decryptSession)));
  }

  const cpHashes = new Map<number, Promise<Uint8Array>>();
  const ctx: CommandContext = {
    commandCode: spec.code,
    cpHash(alg) {
      let p = cpHashes.get(alg);
      if (!p) {
        // Names given or self-named (the usual case with a kept session): hashed now, without a promise per handle.
        const known = entities.map(knownName);
        p = known.every((n) => n !== undefined)
          ? Promise.resolve(hash(alg, u32be(spec.code), ...(known as Uint8Array[]), paramBytes))
          : Promise.all(entities.map(nameOf)).then((names) => hash(alg, u32be(spec.code), ...names, paramBytes));
        cpHashes.set(alg, p);
      }
      return p;
    },
  };
  // nonceTPM of other decrypt/encrypt sessions goes into the first session's HMAC (Part 1, 19.6.5).
  const s0 = sessions[0];
  const extra = concatBytes(
    decryptSession && decryptSession !== s0 ? decryptSession.nonceTPM : new Uint8Array(0),
    encryptSession && encryptSession !== s0 && encryptSession !== decryptSession ? encryptSession.nonceTPM : new Uint8Array(0),
  );

  const w = new Writer(64 + paramBytes.length);
  const tag = sessions.length > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
  w.u16(tag).u32(0).u32(spec.code);
  for (const e of entities) w.u32(e.handle);
  if (sessions.length > 0) {
    const aw = new Writer();
    for (let k = 0; k < sessions.length; k++) TPMS_AUTH_COMMAND.encode(aw, await sessions[k]!.authorize(ctx, authEntities[k], k === 0 ? extra : undefined));
    const area = aw.finish();
    w.u32(area.length).bytes(area);
  }
  w.bytes(paramBytes);
  const cmd = w.finish();
  new DataView(cmd.buffer).setUint32(2, cmd.length);

  const rsp = await transport.send(cmd);

  const r = new Reader(rsp);
  const rtag = r.u16('response tag');
  const size = r.u32('response size');
  const rc = r.u32('response code');
  if (size !== rsp.length) throw new TpmDecodeError(`${spec.name}: response size field ${size} but ${rsp.length} bytes received`, 2);
  if (rc !== 0) {
    for (const s of sessions) s.failed?.(rc);
    throw new TpmError(rc, spec.code);
  }
  const out: Record<string, unknown> = {};
  for (const h of spec.responseHandles) out[h] = r.u32(`${spec.name} response handle ${h}`);
  let rparams: Uint8Array;
  const rauths = [];
  if (rtag === TPM_ST.SESSIONS) {
    const psize = r.u32('parameterSize');
    rparams = r.bytesN(psize, `${spec.name} response parameters`);
    for (let k = 0; k < sessions.length; k++) rauths.push(TPMS_AUTH_RESPONSE.decode(r));
    r.done(`${spec.name} response`);
  } else if (rtag === TPM_ST.NO_SESSIONS) {
    if (sessions.length > 0) throw new TpmDecodeError(`${spec.name}: response has no sessions although the command had ${sessions.length}`, 0);
    rparams = r.rest();
  } else {
    throw new TpmDecodeError(`${spec.name}: unexpected response tag 0x${rtag.toString(16)}`, 0);
  }
  const rpHashes = new Map<number, Uint8Array>();
  const rctx = {
    commandCode: spec.code,
    responseCode: rc,
    rpHash(alg: number) {
      let h = rpHashes.get(alg);
      if (!h) rpHashes.set(alg, (h = hash(alg, u32be(rc), u32be(spec.code), rparams)));
      return h;
    },
  };
  for (let k = 0; k < sessions.length; k++) sessions[k]!.verify(rctx, rauths[k]!, authEntities[k]);
  if (encryptSession) {
    if (!encryptSession.decryptParameter) throw new TypeError(`${spec.name}: session 0x${encryptSession.handle.toString(16)} cannot decrypt parameters`);
    rparams = transformFirstTpm2b(rparams, (d) => encryptSession.decryptParameter!(d, entityOfSession(encryptSession)));
  }

  const pr = new Reader(rparams, 0);
  Object.assign(out, spec.response.decode(pr));
  pr.done(`${spec.name} response parameters`);
  return out as ResponseOf<C>;
}

function firstField(fields: Record<string, { isTpm2b?: boolean }>): { isTpm2b?: boolean } | undefined {
  const k = Object.keys(fields)[0];
  return k === undefined ? undefined : fields[k];
}

/** Apply `f` to the data of the TPM2B at the start of `bytes` (size stays the same). */
function transformFirstTpm2b(bytes: Uint8Array, f: (data: Uint8Array) => Uint8Array): Uint8Array {
  const r = new Reader(bytes);
  const n = r.u16('first parameter size');
  const data = r.bytesN(n, 'first parameter');
  const t = f(data);
  if (t.length !== n) throw new Error('parameter encryption changed the parameter size');
  return concatBytes(bytes.subarray(0, 2), t, bytes.subarray(2 + n));
}
