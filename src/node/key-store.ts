/**
 * The node key on disk: libp2p's protobuf private-key encoding (so libp2p loads it as is), mode
 * 0600, written atomically. A key readable by group or others is refused, as ssh does.
 */
import { readFile, stat, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { identityFromSeed, type Identity } from '../market/identity.js'
import { NodeError } from './errors.js'
import { writeFileAtomic } from './atomic-file.js'
import { bytesEqual } from '../market/bytes.js'

export interface NodeKey {
  privateKey: Ed25519PrivateKey
  identity: Identity
}

function toNodeKey (privateKey: Ed25519PrivateKey, path: string): NodeKey {
  // libp2p's raw Ed25519 private key is seed ‖ public key: the two halves must agree, or the peer
  // id (from the stored public half) and the DID and signatures (from the seed) name different keys.
  const identity = identityFromSeed(privateKey.raw.subarray(0, 32))
  if (!bytesEqual(identity.publicKey, privateKey.raw.subarray(32)) || !bytesEqual(identity.publicKey, privateKey.publicKey.raw)) {
    throw new NodeError('KEY_FILE_INVALID', `${path} is damaged: its public key does not belong to its private key`, { path })
  }
  return { privateKey, identity }
}

async function exists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err: any) {
    if (err.code === 'ENOENT') return false
    throw err
  }
}

export async function createKeyFile (path: string, { overwrite = false } = {}): Promise<NodeKey> {
  if (!overwrite && await exists(path)) {
    throw new NodeError('KEY_FILE_EXISTS', `${path} already exists; refusing to replace a node identity (use --force)`, { path })
  }
  const privateKey = await generateKeyPair('Ed25519')
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  await writeFileAtomic(path, privateKeyToProtobuf(privateKey), 0o600)
  return toNodeKey(privateKey, path)
}

export async function loadKeyFile (path: string): Promise<NodeKey> {
  let info
  try {
    info = await stat(path)
  } catch (err: any) {
    if (err.code === 'ENOENT') throw new NodeError('KEY_FILE_MISSING', `no key file at ${path} (run \`cmesh keygen\`)`, { path })
    throw err
  }
  if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
    throw new NodeError('KEY_FILE_INSECURE', `${path} is readable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`, { path })
  }
  let privateKey
  try {
    privateKey = privateKeyFromProtobuf(await readFile(path))
  } catch (err) {
    throw new NodeError('KEY_FILE_INVALID', `${path} is not a libp2p private key`, { path }, { cause: err })
  }
  if (privateKey.type !== 'Ed25519') throw new NodeError('KEY_FILE_INVALID', `${path} holds a ${privateKey.type} key; cmesh needs Ed25519`, { path })
  return toNodeKey(privateKey, path)
}

/**
 * The node's key, created when there is none — unless `refuseCreateBecause` says why a new
 * identity would be a surprise (a data dir that already holds a store made under another key).
 */
export async function loadOrCreateKeyFile (path: string, { refuseCreateBecause }: { refuseCreateBecause?: string } = {}): Promise<NodeKey & { created: boolean }> {
  if (await exists(path)) return { ...(await loadKeyFile(path)), created: false }
  if (refuseCreateBecause !== undefined) throw new NodeError('IDENTITY_MISSING', `no key file at ${path}, but ${refuseCreateBecause}; restore the key, or start with --new-identity to make a new one`, { path })
  return { ...(await createKeyFile(path)), created: true }
}
