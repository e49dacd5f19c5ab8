/**
 * SSH keys for grants: a fresh Ed25519 key per grant (its private half leaves the provider only in
 * the sealed receipt) and host key fingerprints in OpenSSH's own form.
 */
import ssh2 from 'ssh2'
import type { ParsedKey } from 'ssh2'
import { sha256 } from '@noble/hashes/sha2.js'
import { BackendError } from './backend.js'

export interface GrantKeyPair {
  /** OpenSSH private key PEM (`-----BEGIN OPENSSH PRIVATE KEY-----`), unencrypted. */
  privateKey: string
  /** `ssh-ed25519 AAAA… comment`, one authorized_keys line. */
  authorizedKey: string
}

/**
 * An Ed25519 pair from ssh2, checked: ssh2 1.17 writes a public key that starts with a zero byte
 * without that byte, and such a key does not parse (about 1 in 256 keys;
 * docs/upstream/ssh2-keygen-leading-zero.md). A key that does not parse back is drawn again.
 */
export function generateEd25519 (comment = ''): { private: string, public: string } {
  for (let attempt = 0; attempt < 16; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment })
    const priv = ssh2.utils.parseKey(pair.private)
    const pub = ssh2.utils.parseKey(pair.public)
    if (!(priv instanceof Error) && !(pub instanceof Error) && !Array.isArray(priv) && !Array.isArray(pub) &&
      Buffer.from(priv.getPublicSSH()).equals(Buffer.from(pub.getPublicSSH()))) return pair
  }
  throw new BackendError('BACKEND_BAD_KEY', 'could not generate a parseable Ed25519 key')
}

export function generateGrantKeyPair (comment: string): GrantKeyPair {
  // A newline in the comment would forge a second authorized_keys line.
  if (!/^[\x20-\x7e]{0,128}$/.test(comment)) throw new BackendError('BACKEND_BAD_KEY', 'key comment must be printable ASCII, at most 128 characters')
  const pair = generateEd25519(comment)
  return { privateKey: pair.private, authorizedKey: pair.public.trim() }
}

/** `SHA256:<base64 without padding>` of a public key blob (the wire encoding), as `ssh-keygen -lf` prints it. */
export function hostKeyFingerprint (publicKeyBlob: Uint8Array): string {
  return `SHA256:${Buffer.from(sha256(publicKeyBlob)).toString('base64').replace(/=+$/, '')}`
}

/** Parses one public key (an authorized_keys / known_hosts key line, or a private key's public half). */
export function parsePublicKey (key: string): ParsedKey {
  const parsed = ssh2.utils.parseKey(key)
  if (parsed instanceof Error || Array.isArray(parsed)) throw new BackendError('BACKEND_BAD_KEY', 'not a single OpenSSH key')
  return parsed
}

/** The wire-encoded public key blob of a key line or private key. */
export function publicKeyBlob (key: string): Uint8Array {
  return new Uint8Array(parsePublicKey(key).getPublicSSH())
}
