export type { Transport } from './transport.js';
export { QueuedTransport, FrameAssembler, responseCode, type TransportOptions } from './base.js';
export { DeviceTransport } from './device.js';
export { SwtpmTransport, SWTPM_CTRL, MSSIM, Channel, tpmFrame, fixedFrame, type SocketAddress, type SwtpmTransportOptions, type FrameLength } from './swtpm.js';
export { parseTpmAddress, openTransport, TpmAddressError, DEFAULT_TPM_ADDRESS, type TpmAddress } from './address.js';
