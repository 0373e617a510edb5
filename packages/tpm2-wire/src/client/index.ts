export { Tpm, openTpm, selectionOf, indicesOf, EK_CERT_NV_INDEX, PERSISTENT_HANDLE, type CallOptions, type CreateOptions, type CreatedObject, type KeyType, type OpenTpmOptions } from './tpm.js';
