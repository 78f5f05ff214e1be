import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import path from 'node:path';

/** Temp files being written right now, so a signal handler can remove them synchronously. */
const pending = new Set<string>();

/** Removes every temp file still being written (synchronous: safe in a signal handler before exit). */
export function removePendingTempFiles(): void {
  for (const f of pending) {
    try {
      rmSync(f, { force: true });
    } catch {
      // Best effort: the process is exiting.
    }
  }
  pending.clear();
}

/**
 * Writes `data` to a temp file beside `file`, syncs it and renames it into place, so readers see
 * either the old file or the whole new one, never a partial one.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  pending.add(tmp);
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(tmp, 'wx');
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.rename(tmp, file);
  } finally {
    if (fh) await fh.close().catch(() => undefined);
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    pending.delete(tmp);
  }
}
