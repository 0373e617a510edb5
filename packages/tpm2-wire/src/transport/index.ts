export type { Transport } from './transport.js';
export { QueuedTransport, FrameAssembler, responseCode, type TransportOptions } from './base.js';
export { DeviceTransport } from './device.js';
export { SwtpmTransport, SWTPM_CTRL, type SocketAddress } from './swtpm.js';
export { parseTpmAddress, openTransport, TpmAddressError, DEFAULT_TPM_ADDRESS, type TpmAddress } from './address.js';
