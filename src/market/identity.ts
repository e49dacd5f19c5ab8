/**
 * A node's identity is one Ed25519 key: its libp2p peer id and its `did:key` are two spellings of
 * the same public key, so a record's author can be checked against the noise-authenticated peer.
 */
import { base58btc } from 'multiformats/bases/base58'
import { IdentityError } from './errors.js'
import { ED25519_PUBLIC_KEY_LENGTH, ED25519_SEED_LENGTH, publicKeyFromSeed, signerFromSeed } from './ed25519.js'
import { concatBytes } from './bytes.js'

/** multicodec ed25519-pub (0xed) as unsigned varint. */
const ED25519_PUB_MULTICODEC = Uint8Array.from([0xed, 0x01])
/** libp2p PublicKey protobuf header: field 1 (Type) = 1 (Ed25519), field 2 (Data) length 32. */
const LIBP2P_ED25519_PUBKEY_HEADER = Uint8Array.from([0x08, 0x01, 0x12, 0x20])
/** identity multihash (code 0x00) of 36 bytes: libp2p inlines small keys into the peer id. */
const IDENTITY_MULTIHASH_HEADER = Uint8Array.from([0x00, 0x24])

export type Did = `did:key:z${string}`

export interface Identity {
  readonly publicKey: Uint8Array
  readonly did: Did
  readonly peerId: string
  sign: (message: Uint8Array) => Uint8Array
}

export function identityFromSeed (seed: Uint8Array): Identity {
  if (seed.length !== ED25519_SEED_LENGTH) {
    throw new IdentityError('IDENTITY_BAD_KEY', `an Ed25519 seed is ${ED25519_SEED_LENGTH} bytes, got ${seed.length}`)
  }
  const publicKey = publicKeyFromSeed(seed)
  return {
    publicKey,
    did: didFromPublicKey(publicKey),
    peerId: peerIdFromPublicKey(publicKey),
    sign: signerFromSeed(seed, publicKey),
    // Keep the seed out of console.log / JSON / util.inspect output.
    toJSON: () => ({ did: didFromPublicKey(publicKey) }),
    [Symbol.for('nodejs.util.inspect.custom')]: () => `Identity(${didFromPublicKey(publicKey)})`
  } as Identity
}

export function didFromPublicKey (publicKey: Uint8Array): Did {
  if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) {
    throw new IdentityError('IDENTITY_BAD_KEY', `an Ed25519 public key is 32 bytes, got ${publicKey.length}`)
  }
  return `did:key:${base58btc.encode(concatBytes(ED25519_PUB_MULTICODEC, publicKey))}` as Did
}

const didCache = new Map<string, Uint8Array>()
/** ≈ 200 bytes an entry: a few MiB at most. */
const DID_CACHE_MAX = 16_384

/** Parses `did:key:z6Mk…` (Ed25519 only). Cached: every signature check resolves its author. */
export function publicKeyFromDid (did: string): Uint8Array {
  const cached = didCache.get(did)
  if (cached !== undefined) return cached
  if (typeof did !== 'string' || !did.startsWith('did:key:z') || did.length > 64) {
    throw new IdentityError('IDENTITY_BAD_DID', 'not an Ed25519 did:key', { did: String(did).slice(0, 80) })
  }
  let decoded: Uint8Array
  try {
    decoded = base58btc.decode(did.slice('did:key:'.length))
  } catch (err) {
    throw new IdentityError('IDENTITY_BAD_DID', 'did:key is not valid base58btc', { did }, { cause: err })
  }
  if (decoded.length !== 34 || decoded[0] !== 0xed || decoded[1] !== 0x01) {
    throw new IdentityError('IDENTITY_BAD_DID', 'did:key does not hold an Ed25519 public key', { did })
  }
  const publicKey = decoded.subarray(2)
  // Oldest out first (a Map iterates in insertion order): a sync of 10k cards parses each author
  // in its entry, its verification and its rebuild, and a cache cleared at a bound missed them all.
  if (didCache.size >= DID_CACHE_MAX) didCache.delete(didCache.keys().next().value as string)
  didCache.set(did, publicKey)
  return publicKey
}

export function isDid (value: unknown): value is Did {
  if (typeof value !== 'string') return false
  try {
    publicKeyFromDid(value)
    return true
  } catch {
    return false
  }
}

/** The libp2p peer id string (`12D3KooW…`) of an Ed25519 public key. */
export function peerIdFromPublicKey (publicKey: Uint8Array): string {
  if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) {
    throw new IdentityError('IDENTITY_BAD_KEY', `an Ed25519 public key is 32 bytes, got ${publicKey.length}`)
  }
  // base58btc without the multibase 'z' prefix, as libp2p prints peer ids.
  return base58btc.encode(concatBytes(IDENTITY_MULTIHASH_HEADER, LIBP2P_ED25519_PUBKEY_HEADER, publicKey)).slice(1)
}

export function peerIdFromDid (did: string): string {
  return peerIdFromPublicKey(publicKeyFromDid(did))
}
