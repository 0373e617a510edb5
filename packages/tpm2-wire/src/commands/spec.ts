/**
 * Declarative command specifications (Part 3). One value per command names
 * its code, its handles (and which need authorization), its parameters and
 * its response; `execute()` derives all marshalling from it.
 */
import type { Fields, StructCodec, StructOf } from '../types/codec.js';
import { struct } from '../types/codec.js';

export interface HandleDef {
  readonly name: string;
  /** True for handles with an `@` in Part 3 (authorization required). */
  readonly auth?: boolean;
}

type Simplify<T> = { [K in keyof T]: T[K] } & {};

export interface CommandSpec<H extends string, P, RH extends string, R> {
  readonly name: string;
  readonly code: number;
  readonly handles: readonly { readonly name: H; readonly auth?: boolean }[];
  readonly params: StructCodec<P>;
  readonly responseHandles: readonly RH[];
  readonly response: StructCodec<R>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCommandSpec = CommandSpec<string, any, string, any>;

/** Define a command from plain field lists; the TypeScript types of its inputs and outputs are inferred. */
export function defineCommand<
  const H extends readonly HandleDef[],
  PF extends Fields,
  RF extends Fields,
  const RH extends readonly string[] = [],
>(def: {
  name: string;
  code: number;
  handles: H;
  params: PF;
  responseHandles?: RH;
  response: RF;
}): CommandSpec<H[number]['name'], Simplify<StructOf<PF>>, RH[number], Simplify<StructOf<RF>>> {
  return {
    name: def.name,
    code: def.code,
    handles: def.handles as readonly { name: H[number]['name']; auth?: boolean }[],
    params: struct(`${def.name} parameters`, def.params),
    responseHandles: (def.responseHandles ?? []) as readonly RH[number][],
    response: struct(`${def.name} response`, def.response),
  };
}

/** The parameters a command takes. */
export type ParamsOf<C> = C extends CommandSpec<string, infer P, string, unknown> ? P : never;
/** The handle names a command takes. */
export type HandlesOf<C> = C extends CommandSpec<infer H, unknown, string, unknown> ? H : never;
/** The decoded response (parameters plus response handles by name). */
export type ResponseOf<C> = C extends CommandSpec<string, unknown, infer RH, infer R> ? Simplify<R & { [K in RH]: number }> : never;
