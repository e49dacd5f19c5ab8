/**
 * Sealed receipts (DESIGN.md §8): HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256),
 * HKDF-SHA256 and ChaCha20-Poly1305 (suite 0x0020/0x0001/0x0003), single-shot. The provider seals
 * the SSH access it granted to the receipt key the requester named; the same primitive seals a
 * requester's user_data to a provider. `info` names the payload and its version, so a sealed
 * user_data can never be opened as a receipt; `aad` binds the payload to the record it answers
 * (for a receipt: the CCR's CID bytes), so a receipt cannot be replayed against another contract.
 *
 * Pure: no I/O, no clock. Errors never carry key material or plaintext.
 */
// @hpke/core's X25519 KEM runs on the platform's WebCrypto X25519; @hpke/dhkem-x25519's is pure
// JavaScript and several times slower (the same KEM id, so nothing changes on the wire).
import { CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { Chacha20Poly1305 } from '@hpke/chacha20poly1305'
import { x25519 } from '@noble/curves/ed25519.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { z } from 'zod'
import { utf8 } from './bytes.js'
import { decodeCanonical, encodeCanonical } from './cbor.js'
import { CmeshError } from './errors.js'
import { unixSecs } from './schema.js'

export type SealErrorCode = 'SEAL_OPEN_FAILED' | 'SEAL_MALFORMED' | 'SEAL_TOO_LARGE'

export class SealError extends CmeshError<SealErrorCode> {}

/** HPKE `info` of a sealed receipt. */
export const RECEIPT_INFO = utf8('cmesh/receipt/v1')
/** HPKE `info` of sealed user_data. */
export const USER_DATA_INFO = utf8('cmesh/user-data/v1')

/** Most plaintext bytes `sealBytes` accepts (user_data). */
export const MAX_SEALED_PLAINTEXT = 64 * 1024
/** Most bytes of an encoded receipt; one holds an Ed25519 OpenSSH key and a few short strings (~600 bytes). */
export const MAX_RECEIPT_BYTES = 8 * 1024

const KEY_BYTES = 32 // X25519 Npk = Nsk = Nenc
const TAG_BYTES = 16 // ChaCha20-Poly1305 Nt

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() })

export interface Sealed {
  /** The encapsulated ephemeral X25519 public key (32 bytes). */
  enc: Uint8Array
  /** AEAD ciphertext with its 16-byte tag. */
  ct: Uint8Array
}

export interface ReceiptKeyPair {
  /** Raw X25519 public key (32 bytes), as put in a CCBA. */
  publicKey: Uint8Array
  /** Raw X25519 private key (32 bytes). */
  privateKey: Uint8Array
}

const OPENSSH_PRIVATE_KEY = /^-----BEGIN OPENSSH PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END OPENSSH PRIVATE KEY-----\r?\n?$/

export const receiptSchema = z.strictObject({
  host: z.string().min(1).max(253).regex(/^[A-Za-z0-9.:-]+$/, 'expected a host name or IP address'),
  port: z.number().int().min(1).max(65_535),
  // No leading '-': a user name is passed to ssh and must never read as an option.
  user: z.string().regex(/^[A-Za-z_][A-Za-z0-9._-]{0,31}$/, 'expected a POSIX user name'),
  privateKey: z.string().max(4096).regex(OPENSSH_PRIVATE_KEY, 'expected an OpenSSH private key'),
  hostKeyFingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'expected SHA256:<base64 without padding>'),
  // The key itself, so the requester can pin it (OpenSSH pins keys, not fingerprints).
  hostKey: z.string().max(1024).regex(/^[a-z0-9@.-]{1,64} [A-Za-z0-9+/]+={0,2}$/, 'expected "<key type> <base64>"'),
  grantId: z.string().min(1).max(256),
  validToUnixSecs: unixSecs
}).refine((r) => sshFingerprint(r.hostKey) === r.hostKeyFingerprint, { message: 'hostKeyFingerprint is not the SHA256 of hostKey', path: ['hostKeyFingerprint'] })

/** `SHA256:<base64 without padding>` of an OpenSSH public key line's key blob, as `ssh-keygen -lf` prints it. */
export function sshFingerprint (keyLine: string): string {
  const blob = Buffer.from(keyLine.split(' ')[1] ?? '', 'base64')
  return `SHA256:${Buffer.from(sha256(blob)).toString('base64').replace(/=+$/, '')}`
}

/** What a requester needs to log in to the machine it was granted. */
export type Receipt = z.infer<typeof receiptSchema>

export async function generateReceiptKeyPair (): Promise<ReceiptKeyPair> {
  const pair = await suite.kem.generateKeyPair()
  return {
    publicKey: new Uint8Array(await suite.kem.serializePublicKey(pair.publicKey)),
    privateKey: new Uint8Array(await suite.kem.serializePrivateKey(pair.privateKey))
  }
}

/** The X25519 public key of a raw private key (RFC 7748 clamping, as HPKE does). */
export function receiptPublicKey (privateKey: Uint8Array): Uint8Array {
  checkKey(privateKey, 'private key')
  return x25519.getPublicKey(privateKey)
}

/** Seals arbitrary bytes (at most 64 KiB) to `recipientPublicKey`, domain `info`, bound to `aad`. */
export async function sealBytes (plaintext: Uint8Array, recipientPublicKey: Uint8Array, info: Uint8Array, aad: Uint8Array): Promise<Sealed> {
  return await seal(plaintext, recipientPublicKey, info, aad, MAX_SEALED_PLAINTEXT)
}

export async function openBytes (sealed: Sealed, recipientPrivateKey: Uint8Array, info: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  return await open(sealed, recipientPrivateKey, info, aad, MAX_SEALED_PLAINTEXT)
}

/** Seals a receipt to the requester's receipt key; `aad` must name the contract (the CCR's CID bytes). */
export async function sealReceipt (receipt: Receipt, recipientPublicKey: Uint8Array, aad: Uint8Array): Promise<Sealed> {
  const checked = parseReceipt(receipt)
  requireAad(aad)
  return await seal(encodeCanonical(checked), recipientPublicKey, RECEIPT_INFO, aad, MAX_RECEIPT_BYTES)
}

export async function openReceipt (sealed: Sealed, recipientPrivateKey: Uint8Array, aad: Uint8Array): Promise<Receipt> {
  requireAad(aad)
  const plaintext = await open(sealed, recipientPrivateKey, RECEIPT_INFO, aad, MAX_RECEIPT_BYTES)
  let value: unknown
  try {
    value = decodeCanonical(plaintext)
  } catch (err) {
    throw new SealError('SEAL_MALFORMED', 'receipt plaintext is not canonical DAG-CBOR', {}, { cause: err })
  }
  return parseReceipt(value)
}

function parseReceipt (value: unknown): Receipt {
  const result = receiptSchema.safeParse(value)
  if (!result.success) {
    // Paths and rule messages only: zod could echo values, and a receipt holds a private key.
    const where = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new SealError('SEAL_MALFORMED', `receipt does not match its schema (${where})`, { paths: result.error.issues.map((i) => i.path.join('.')) })
  }
  return result.data
}

async function seal (plaintext: Uint8Array, recipientPublicKey: Uint8Array, info: Uint8Array, aad: Uint8Array, max: number): Promise<Sealed> {
  checkBytes(plaintext, 'plaintext')
  checkBytes(info, 'info')
  checkBytes(aad, 'aad')
  checkKey(recipientPublicKey, 'recipient public key')
  if (plaintext.length > max) throw new SealError('SEAL_TOO_LARGE', `plaintext is ${plaintext.length} bytes; at most ${max}`, { size: plaintext.length, max })
  let sealed
  try {
    const publicKey = await suite.kem.deserializePublicKey(recipientPublicKey)
    sealed = await suite.seal({ recipientPublicKey: publicKey, info }, plaintext, aad)
  } catch (err) {
    // A low-order point gives an all-zero DH output, which RFC 9180 §7.1.4 makes encap refuse.
    throw new SealError('SEAL_MALFORMED', 'recipient public key rejected', {}, { cause: err })
  }
  return { enc: new Uint8Array(sealed.enc), ct: new Uint8Array(sealed.ct) }
}

async function open (sealed: Sealed, recipientPrivateKey: Uint8Array, info: Uint8Array, aad: Uint8Array, max: number): Promise<Uint8Array> {
  if (typeof sealed !== 'object' || sealed === null) throw new SealError('SEAL_MALFORMED', 'expected { enc, ct }')
  const { enc, ct } = sealed
  checkBytes(enc, 'enc')
  checkBytes(ct, 'ct')
  checkBytes(info, 'info')
  checkBytes(aad, 'aad')
  checkKey(recipientPrivateKey, 'recipient private key')
  if (enc.length !== KEY_BYTES) throw new SealError('SEAL_MALFORMED', `enc is ${enc.length} bytes; expected ${KEY_BYTES}`)
  if (ct.length < TAG_BYTES) throw new SealError('SEAL_MALFORMED', `ct is ${ct.length} bytes; shorter than the AEAD tag`)
  if (ct.length > max + TAG_BYTES) throw new SealError('SEAL_TOO_LARGE', `ct is ${ct.length} bytes; at most ${max + TAG_BYTES}`, { size: ct.length, max: max + TAG_BYTES })
  try {
    const recipientKey = await suite.kem.deserializePrivateKey(recipientPrivateKey)
    return new Uint8Array(await suite.open({ recipientKey, enc, info }, ct, aad))
  } catch (err) {
    // One code for wrong key, tampered enc/ct, other aad or info: telling them apart would be an oracle.
    throw new SealError('SEAL_OPEN_FAILED', 'cannot open sealed payload (wrong key, or enc, ct, info or aad altered)', {}, { cause: err })
  }
}

function checkBytes (value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new SealError('SEAL_MALFORMED', `${what}: expected bytes`)
}

function checkKey (key: unknown, what: string): asserts key is Uint8Array {
  checkBytes(key, what)
  if (key.length !== KEY_BYTES) throw new SealError('SEAL_MALFORMED', `${what} is ${key.length} bytes; expected ${KEY_BYTES}`)
}

function requireAad (aad: Uint8Array): void {
  checkBytes(aad, 'aad')
  if (aad.length === 0) throw new SealError('SEAL_MALFORMED', 'a receipt must be bound to its contract: aad is empty')
}
