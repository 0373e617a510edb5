export { PasswordSession, passwordSession, type AuthSession, type AuthEntity, type CommandContext, type ResponseContext } from './session.js';
