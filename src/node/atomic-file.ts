import { open, rename, unlink } from 'node:fs/promises'

/** Writes atomically (temp file, fsync, rename), so a crash leaves the old file or the new one. */
export async function writeFileAtomic (path: string, bytes: Uint8Array, mode = 0o644): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`
  // The temp file is created with the final mode, so a key is never briefly world-readable.
  const handle = await open(tmp, 'wx', mode)
  try {
    await handle.writeFile(bytes)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
}
