/**
 * The node's EVM key (payments: the requester's payer, the provider's pay-to and facilitator
 * signer): 32 bytes as 0x-hex in `<data>/evm.key`, mode 0600, written atomically, created on first
 * use. A key readable by group or others is refused, as for the node key.
 */
import { readFile, stat } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { NodeError } from './errors.js'
import { writeFileAtomic } from './atomic-file.js'

const KEY_TEXT = /^0x[0-9a-f]{64}$/

export async function loadOrCreateEvmKey (path: string): Promise<`0x${string}`> {
  let info
  try {
    info = await stat(path)
  } catch (err: any) {
    if (err.code !== 'ENOENT') throw err
    const key = `0x${randomBytes(32).toString('hex')}` as const
    await writeFileAtomic(path, new TextEncoder().encode(key + '\n'), 0o600)
    return key
  }
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    throw new NodeError('KEY_FILE_INSECURE', `${path} is readable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`, { path })
  }
  const text = (await readFile(path, 'utf8')).trim().toLowerCase()
  if (!KEY_TEXT.test(text)) throw new NodeError('KEY_FILE_INVALID', `${path} is not a 0x-prefixed 32-byte hex EVM key`, { path })
  return text as `0x${string}`
}
