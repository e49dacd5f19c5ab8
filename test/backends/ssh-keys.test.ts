import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { BackendError } from '../../src/backends/backend.js'
import { generateGrantKeyPair, hostKeyFingerprint, parsePublicKey, publicKeyBlob } from '../../src/backends/ssh-keys.js'

describe('ssh keys', () => {
  it('fingerprints a key exactly as ssh-keygen -lf does', () => {
    // `ssh-keygen -lf` on this line printed: 256 SHA256:o8n+msxZGZEQifp+qghlO5NCvjdt3IhZAvq4c2U1yws grant-x (ED25519)
    const line = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOCseFgw/DtYa74Ym2HrpezI53cuf9Ju5PfohqALC5J6 grant-x'
    assert.equal(hostKeyFingerprint(publicKeyBlob(line)), 'SHA256:o8n+msxZGZEQifp+qghlO5NCvjdt3IhZAvq4c2U1yws')
  })

  it('generates a fresh Ed25519 pair per grant, in OpenSSH formats', () => {
    const a = generateGrantKeyPair('cmesh grant 1')
    const b = generateGrantKeyPair('cmesh grant 2')
    assert.match(a.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END OPENSSH PRIVATE KEY-----\n$/)
    assert.match(a.authorizedKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+=* cmesh grant 1$/)
    assert.notEqual(a.authorizedKey.split(' ')[1], b.authorizedKey.split(' ')[1])
    // The private key's public half is the authorized key.
    assert.deepEqual(publicKeyBlob(a.privateKey), publicKeyBlob(a.authorizedKey))
    assert.equal(parsePublicKey(a.privateKey).isPrivateKey(), true)
  })

  it('refuses comments that could forge a second authorized_keys line, and non-keys', () => {
    for (const comment of ['a\nssh-ed25519 AAAA evil', 'tab\there', 'x'.repeat(129)]) {
      assert.throws(() => generateGrantKeyPair(comment), (err: unknown) => err instanceof BackendError && err.code === 'BACKEND_BAD_KEY')
    }
    assert.throws(() => publicKeyBlob('not a key'), (err: unknown) => err instanceof BackendError && err.code === 'BACKEND_BAD_KEY')
  })
})
