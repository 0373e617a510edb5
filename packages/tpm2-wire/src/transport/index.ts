export type { Transport } from './transport.js';
export { QueuedTransport, MessageBuffer, responseCode, tpmFrame, fixedFrame, type FrameLength, type TransportOptions } from './base.js';
export { DeviceTransport } from './device.js';
export { SwtpmTransport, SWTPM_CTRL, MSSIM, Channel, type SocketAddress, type SwtpmTransportOptions } from './swtpm.js';
export { parseTpmAddress, openTransport, TpmAddressError, DEFAULT_TPM_ADDRESS, type TpmAddress } from './address.js';
