// The per-node state directory (TPM-wrapped key blobs): mode 0700, owned by the attestor's uid:gid,
// so a non-root attestor can use it and nobody else on the node can read it. The kubelet's
// hostPath (DirectoryOrCreate) makes it root:root 0755; this fixes it up. Needs CAP_CHOWN.
import { chmod, chown, mkdir, stat } from 'node:fs/promises';
import { errorMessage } from './log.js';

export async function ensureStateDir(dir: string, owner: { uid: number; gid: number }): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const st = await stat(dir);
    if (!st.isDirectory()) throw new Error('exists and is not a directory');
    // chmod before chown: after the chown only the new owner (or CAP_FOWNER) may chmod.
    if ((st.mode & 0o7777) !== 0o700) await chmod(dir, 0o700);
    if (st.uid !== owner.uid || st.gid !== owner.gid) await chown(dir, owner.uid, owner.gid);
  } catch (e) {
    throw new Error(`state directory ${dir} (want mode 0700, owner ${owner.uid}:${owner.gid}): ${errorMessage(e)}`, { cause: e });
  }
}
