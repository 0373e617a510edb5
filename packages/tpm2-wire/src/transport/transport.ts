/** The one-method transport contract (ARCHITECTURE.md, layer 5). */
export interface Transport {
  /** Send one complete command and resolve with the complete response. Commands are queued: one in flight. */
  send(command: Uint8Array): Promise<Uint8Array>;
  /** Close the connection; pending commands fail. */
  close(): Promise<void>;
}
