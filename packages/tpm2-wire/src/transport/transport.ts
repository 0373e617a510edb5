/** The one-method transport contract (ARCHITECTURE.md, layer 5). */
export interface Transport {
  /** Send one complete command and resolve with the complete response. Commands are queued: one in flight. */
  send(command: Uint8Array): Promise<Uint8Array>;
  /** Close the connection; pending commands fail. */
  close(): Promise<void>;
  /**
   * Set by transports that start the TPM themselves when they find it reset or powered off
   * (swtpm: TPM2_Startup after TPM_RC_INITIALIZE): how many times they did. Objects and sessions
   * loaded before this count changed are gone, even though no command reported an error.
   */
  readonly startups?: number;
}
