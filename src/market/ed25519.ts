/**
 * Ed25519, the key type libp2p peer ids use. Keys and signatures come from @noble/curves;
 * verification goes through node:crypto because bulk sync verifies thousands of records and the
 * native path is ~12x faster (DESIGN.md §11). Both are pure computation: no I/O, no clock.
 */
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto'
import { ed25519 } from '@noble/curves/ed25519.js'
import { concatBytes } from './bytes.js'

export const ED25519_PUBLIC_KEY_LENGTH = 32
export const ED25519_SIGNATURE_LENGTH = 64
export const ED25519_SEED_LENGTH = 32

// DER SubjectPublicKeyInfo header for an Ed25519 key (RFC 8410): node:crypto wants SPKI, not raw.
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00])

const keyObjects = new Map<string, KeyObject>()
const KEY_CACHE_MAX = 4096

function keyObject (publicKey: Uint8Array): KeyObject {
  const id = Buffer.from(publicKey).toString('base64')
  let key = keyObjects.get(id)
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.from(concatBytes(SPKI_PREFIX, publicKey)), format: 'der', type: 'spki' })
    if (keyObjects.size >= KEY_CACHE_MAX) keyObjects.clear()
    keyObjects.set(id, key)
  }
  return key
}

export function publicKeyFromSeed (seed: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(seed)
}

export function sign (seed: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, seed)
}

/** Never throws: a malformed key or signature is simply not valid. */
export function verify (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH || signature.length !== ED25519_SIGNATURE_LENGTH) return false
  try {
    return nodeVerify(null, message, keyObject(publicKey), signature)
  } catch {
    return false
  }
}
