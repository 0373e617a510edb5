export { PasswordSession, passwordSession, type AuthSession, type AuthEntity, type CommandContext, type ResponseContext } from './session.js';
export { Session, AES128_CFB, SESSION_TYPE, deriveSessionKey, type SessionType, type SessionState } from './auth-session.js';
