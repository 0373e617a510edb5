/**
 * TPM addresses in tpm2-tools TCTI style (ARCHITECTURE.md, layer 5):
 * `device:/dev/tpmrm0`, `swtpm:port=2321`, `swtpm:host=H,port=P`, `swtpm:path=/run/swtpm/sock`,
 * `mssim:host=H,port=P` (Microsoft/IBM reference simulator framing; platform channel on port+1).
 */
import { DeviceTransport } from './device.js';
import { SwtpmTransport, type SocketAddress } from './swtpm.js';
import type { TransportOptions } from './base.js';
import type { Transport } from './transport.js';

export const DEFAULT_TPM_ADDRESS = 'device:/dev/tpmrm0';

export type TpmAddress = { kind: 'device'; path: string } | { kind: 'swtpm' | 'mssim'; socket: SocketAddress };

/** Thrown for an address string that does not parse; the message shows the accepted forms. */
export class TpmAddressError extends Error {
  override readonly name = 'TpmAddressError';
}

const FORMS = 'expected device:/dev/tpmrm0, swtpm:port=P, swtpm:host=H,port=P, swtpm:path=/path/to/socket or mssim:host=H,port=P';

/** Parse an address string. */
export function parseTpmAddress(address: string): TpmAddress {
  const s = address.trim();
  const colon = s.indexOf(':');
  const scheme = colon < 0 ? s : s.slice(0, colon);
  const rest = colon < 0 ? '' : s.slice(colon + 1);
  if (scheme === 'device') {
    const path = rest === '' ? '/dev/tpmrm0' : rest;
    if (!path.startsWith('/')) throw new TpmAddressError(`bad TPM address ${JSON.stringify(address)}: the device path must be absolute`);
    return { kind: 'device', path };
  }
  if (scheme === 'swtpm' || scheme === 'mssim') {
    const kv = new Map<string, string>();
    for (const part of rest === '' ? [] : rest.split(',')) {
      const eq = part.indexOf('=');
      if (eq <= 0) throw new TpmAddressError(`bad TPM address ${JSON.stringify(address)}: ${JSON.stringify(part)} is not key=value; ${FORMS}`);
      const k = part.slice(0, eq).trim();
      if (!['host', 'port', 'path'].includes(k)) throw new TpmAddressError(`bad TPM address ${JSON.stringify(address)}: unknown key ${JSON.stringify(k)}; ${FORMS}`);
      kv.set(k, part.slice(eq + 1).trim());
    }
    const path = kv.get('path');
    if (path !== undefined) {
      if (scheme === 'mssim') throw new TpmAddressError(`bad TPM address ${JSON.stringify(address)}: mssim takes host and port, not path`);
      if (kv.has('host') || kv.has('port')) throw new TpmAddressError(`bad TPM address ${JSON.stringify(address)}: path excludes host and port`);
      if (path === '') throw new TpmAddressError(`bad TPM address ${JSON.stringify(address)}: empty path`);
      return { kind: scheme, socket: { path } };
    }
    const portText = kv.get('port') ?? '2321';
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65534) throw new TpmAddressError(`bad TPM address ${JSON.stringify(address)}: port ${JSON.stringify(portText)} is not a number from 1 to 65534`);
    return { kind: scheme, socket: { host: kv.get('host') || '127.0.0.1', port } };
  }
  throw new TpmAddressError(`bad TPM address ${JSON.stringify(address)}: unknown kind ${JSON.stringify(scheme)}; ${FORMS}`);
}

/** Open a transport for an address string. */
export async function openTransport(address: string = DEFAULT_TPM_ADDRESS, opts: TransportOptions = {}): Promise<Transport> {
  const a = parseTpmAddress(address);
  if (a.kind === 'device') return DeviceTransport.open(a.path, opts);
  return SwtpmTransport.open(a.socket, { ...opts, framing: a.kind === 'mssim' ? 'mssim' : 'raw' });
}
