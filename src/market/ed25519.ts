/**
 * Ed25519, the key type libp2p peer ids use. Public keys are derived with @noble/curves; signing
 * and verification run through node:crypto because bulk sync verifies thousands of records and the
 * native path is several times faster than pure JS (DESIGN.md §11). Keys enter node:crypto as JWK:
 * OpenSSL 3's DER decoders are ~15x slower to import a key. Pure computation: no I/O, no clock.
 */
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto'
import { ed25519 } from '@noble/curves/ed25519.js'

export const ED25519_PUBLIC_KEY_LENGTH = 32
export const ED25519_SIGNATURE_LENGTH = 64
export const ED25519_SEED_LENGTH = 32

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')

const keyObjects = new Map<string, KeyObject>()
const KEY_CACHE_MAX = 4096

function publicKeyObject (publicKey: Uint8Array): KeyObject {
  const x = b64url(publicKey)
  let key = keyObjects.get(x)
  if (key === undefined) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
    if (keyObjects.size >= KEY_CACHE_MAX) keyObjects.clear()
    keyObjects.set(x, key)
  }
  return key
}

export function publicKeyFromSeed (seed: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(seed)
}

export type Signer = (message: Uint8Array) => Uint8Array

/** A signing function holding the seed in a native key object (RFC 8032 deterministic signatures). */
export function signerFromSeed (seed: Uint8Array, publicKey: Uint8Array = publicKeyFromSeed(seed)): Signer {
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(seed), x: b64url(publicKey) }, format: 'jwk' })
  return (message) => new Uint8Array(nodeSign(null, message, key))
}

/** Never throws: a malformed key or signature is simply not valid. */
export function verify (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH || signature.length !== ED25519_SIGNATURE_LENGTH) return false
  try {
    return nodeVerify(null, message, publicKeyObject(publicKey), signature)
  } catch {
    return false
  }
}
