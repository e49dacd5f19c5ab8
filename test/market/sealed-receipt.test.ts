/**
 * Sealed receipts: HPKE base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305.
 * The RFC 9180 A.2.1 vector pins the suite; the cmesh vector pins info, encoding and aad use.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { CipherSuite } from '@hpke/core'
import { DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/dhkem-x25519'
import { Chacha20Poly1305 } from '@hpke/chacha20poly1305'
import { sha256 } from '@noble/hashes/sha2.js'
import { fromHex, toHex, utf8, bytesEqual } from '../../src/market/bytes.js'
import { cidForBytes, encodeCanonical } from '../../src/market/cbor.js'
import {
  generateReceiptKeyPair, receiptPublicKey, sealReceipt, openReceipt, sealBytes, openBytes, SealError,
  RECEIPT_INFO, USER_DATA_INFO, MAX_SEALED_PLAINTEXT, type Receipt, type Sealed
} from '../../src/market/sealed-receipt.js'

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() })

/** A throwaway Ed25519 key, used only here. */
const TEST_PEM = [
  '-----BEGIN OPENSSH PRIVATE KEY-----',
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz',
  'c2gtZWQyNTUxOQAAACDgrHhYMPw7WGu+GJth66XsyOd3Ln/SbuT36IagCwuSegAA',
  'AJDnJ99i5yffYgAAAAtzc2gtZWQyNTUxOQAAACDgrHhYMPw7WGu+GJth66XsyOd3',
  'Ln/SbuT36IagCwuSegAAAEBLbwiC/Ku1SIrhUidKYNMgdKYn+9s7BYjIggzO+qwf',
  'P+CseFgw/DtYa74Ym2HrpezI53cuf9Ju5PfohqALC5J6AAAAB2dyYW50LXgBAgME',
  'BQY=',
  '-----END OPENSSH PRIVATE KEY-----',
        ''
].join('\n')

const RECEIPT: Receipt = {
  host: '203.0.113.7',
  port: 2222,
  user: 'cmesh',
  privateKey: TEST_PEM,
  hostKeyFingerprint: 'SHA256:gNSIRW+2Iyiuvsdp/bgjy38bvWHw6wQm3tuoXrl3WjQ',
  hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH',
  grantId: 'grant-0001',
  validToUnixSecs: 1767225600
}
const AAD = cidForBytes(utf8('ccr')).bytes

function flip (bytes: Uint8Array, index: number): Uint8Array {
  const out = bytes.slice()
  out[index] = (out[index] as number) ^ 0x01
  return out
}

async function refusal (p: Promise<unknown>, code: string): Promise<SealError> {
  try {
    await p
  } catch (err) {
    assert.ok(err instanceof SealError, `untyped: ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return err
  }
  assert.fail(`expected ${code}`)
}

describe('sealed receipt', () => {
  it('round-trips a receipt and user_data', async () => {
    const { publicKey, privateKey } = await generateReceiptKeyPair()
    assert.equal(publicKey.length, 32)
    assert.equal(privateKey.length, 32)
    assert.ok(bytesEqual(receiptPublicKey(privateKey), publicKey))
    const sealed = await sealReceipt(RECEIPT, publicKey, AAD)
    assert.equal(sealed.enc.length, 32)
    assert.equal(sealed.ct.length, encodeCanonical(RECEIPT).length + 16)
    assert.deepEqual(await openReceipt(sealed, privateKey, AAD), RECEIPT)

    const data = utf8('#!/bin/sh\necho hi\n')
    const sealedData = await sealBytes(data, publicKey, USER_DATA_INFO, AAD)
    assert.deepEqual(await openBytes(sealedData, privateKey, USER_DATA_INFO, AAD), data)
    const full = new Uint8Array(MAX_SEALED_PLAINTEXT).fill(7)
    assert.deepEqual(await openBytes(await sealBytes(full, publicKey, USER_DATA_INFO, AAD), privateKey, USER_DATA_INFO, AAD), full)
  })

  it('seals to a fresh ephemeral key every time', async () => {
    const { publicKey } = await generateReceiptKeyPair()
    const a = await sealReceipt(RECEIPT, publicKey, AAD)
    const b = await sealReceipt(RECEIPT, publicKey, AAD)
    assert.notEqual(toHex(a.enc), toHex(b.enc))
    assert.notEqual(toHex(a.ct), toHex(b.ct))
  })

  it('another key cannot open it', async () => {
    const { publicKey } = await generateReceiptKeyPair()
    const other = await generateReceiptKeyPair()
    const sealed = await sealReceipt(RECEIPT, publicKey, AAD)
    await refusal(openReceipt(sealed, other.privateKey, AAD), 'SEAL_OPEN_FAILED')
  })

  it('a flipped bit in enc, ct or aad, or another info, fails with SEAL_OPEN_FAILED', async () => {
    const { publicKey, privateKey } = await generateReceiptKeyPair()
    const sealed = await sealReceipt(RECEIPT, publicKey, AAD)
    for (const i of [0, 13, 31]) await refusal(openReceipt({ ...sealed, enc: flip(sealed.enc, i) }, privateKey, AAD), 'SEAL_OPEN_FAILED')
    for (const i of [0, 100, sealed.ct.length - 17, sealed.ct.length - 1]) await refusal(openReceipt({ ...sealed, ct: flip(sealed.ct, i) }, privateKey, AAD), 'SEAL_OPEN_FAILED')
    for (const i of [0, AAD.length - 1]) await refusal(openReceipt(sealed, privateKey, flip(AAD, i)), 'SEAL_OPEN_FAILED')
    await refusal(openReceipt(sealed, privateKey, AAD.subarray(1)), 'SEAL_OPEN_FAILED')
    // Domain separation: sealed user_data never opens as a receipt, nor a receipt as user_data.
    await refusal(openBytes(sealed, privateKey, USER_DATA_INFO, AAD), 'SEAL_OPEN_FAILED')
    const asData = await sealBytes(encodeCanonical(RECEIPT), publicKey, USER_DATA_INFO, AAD)
    await refusal(openReceipt(asData, privateKey, AAD), 'SEAL_OPEN_FAILED')
  })

  it('bad sizes and bad plaintext are SEAL_MALFORMED; oversize is SEAL_TOO_LARGE', async () => {
    const { publicKey, privateKey } = await generateReceiptKeyPair()
    const sealed = await sealReceipt(RECEIPT, publicKey, AAD)
    await refusal(sealReceipt(RECEIPT, publicKey.subarray(1), AAD), 'SEAL_MALFORMED')
    await refusal(sealReceipt(RECEIPT, new Uint8Array(32), AAD), 'SEAL_MALFORMED') // low-order point
    await refusal(sealReceipt(RECEIPT, publicKey, new Uint8Array(0)), 'SEAL_MALFORMED')
    await refusal(openReceipt(sealed, privateKey.subarray(1), AAD), 'SEAL_MALFORMED')
    await refusal(openReceipt({ ...sealed, enc: sealed.enc.subarray(1) }, privateKey, AAD), 'SEAL_MALFORMED')
    await refusal(openReceipt({ ...sealed, ct: sealed.ct.subarray(0, 15) }, privateKey, AAD), 'SEAL_MALFORMED')
    await refusal(openReceipt({ enc: 'x', ct: sealed.ct } as unknown as Sealed, privateKey, AAD), 'SEAL_MALFORMED')
    await refusal(sealBytes(new Uint8Array(MAX_SEALED_PLAINTEXT + 1), publicKey, USER_DATA_INFO, AAD), 'SEAL_TOO_LARGE')
    await refusal(openBytes({ enc: sealed.enc, ct: new Uint8Array(MAX_SEALED_PLAINTEXT + 17) }, privateKey, USER_DATA_INFO, AAD), 'SEAL_TOO_LARGE')

    // Sealing refuses a receipt that does not match the schema; opening refuses such a plaintext.
    const { privateKey: _k, ...noKey } = RECEIPT
    for (const bad of [{ ...RECEIPT, port: 0 }, { ...RECEIPT, user: '-oProxyCommand=x' }, { ...RECEIPT, hostKeyFingerprint: 'MD5:aa' }, { ...RECEIPT, hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5' }, noKey, { ...RECEIPT, extra: 1 }]) {
      await refusal(sealReceipt(bad as Receipt, publicKey, AAD), 'SEAL_MALFORMED')
      const forged = await sealBytes(encodeCanonical(bad), publicKey, RECEIPT_INFO, AAD)
      await refusal(openReceipt(forged, privateKey, AAD), 'SEAL_MALFORMED')
    }
    const notCbor = await sealBytes(utf8('{"host":"x"}'), publicKey, RECEIPT_INFO, AAD)
    await refusal(openReceipt(notCbor, privateKey, AAD), 'SEAL_MALFORMED')
  })

  it('never puts key material in error messages', async () => {
    const { publicKey, privateKey } = await generateReceiptKeyPair()
    const badKey = { ...RECEIPT, privateKey: TEST_PEM.replace('BQY=', 'BQY=!') }
    const err = await refusal(sealReceipt(badKey, publicKey, AAD), 'SEAL_MALFORMED')
    assert.ok(!err.message.includes('b3BlbnNzaC1rZXk'), err.message)
    const forged = await sealBytes(encodeCanonical(badKey), publicKey, RECEIPT_INFO, AAD)
    const err2 = await refusal(openReceipt(forged, privateKey, AAD), 'SEAL_MALFORMED')
    assert.ok(!err2.message.includes('b3BlbnNzaC1rZXk'), err2.message)
    const err3 = await refusal(openReceipt(await sealReceipt(RECEIPT, publicKey, AAD), (await generateReceiptKeyPair()).privateKey, AAD), 'SEAL_OPEN_FAILED')
    assert.ok(!err3.message.includes(toHex(privateKey)) && !JSON.stringify(err3.meta).includes(toHex(privateKey)))
  })

  it('matches RFC 9180 A.2.1 (base mode, X25519 / HKDF-SHA256 / ChaCha20-Poly1305)', async () => {
    const info = utf8('Ode on a Grecian Urn')
    const skRm = fromHex('8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb')
    const derived = await suite.kem.deriveKeyPair(fromHex('1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df'))
    assert.equal(toHex(new Uint8Array(await suite.kem.serializePrivateKey(derived.privateKey))), toHex(skRm))
    assert.equal(toHex(receiptPublicKey(skRm)), '4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a')
    const rfc = {
      enc: fromHex('1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a'),
      ct: fromHex('1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28')
    }
    assert.equal(toHex(await openBytes(rfc, skRm, info, fromHex('436f756e742d30'))), '4265617574792069732074727574682c20747275746820626561757479')
  })

  it('opens the fixed cmesh receipt vector, and the same ephemeral key reproduces it', async () => {
    // ikm = sha256(utf8('cmesh receipt test vector: recipient' | ': ephemeral')), through DeriveKeyPair (RFC 9180 §7.1.3).
    const ikmR = sha256(utf8('cmesh receipt test vector: recipient'))
    const ikmE = sha256(utf8('cmesh receipt test vector: ephemeral'))
    const skR = fromHex('ffcc2e606a4057939dcebc83a51fed44bae654ae1f3a3f1429f359b5ef3c6e4b')
    const pkR = fromHex('d1c9ef9adabf0969abb4de51dab32ba6b894c49ceab9bc5a9e37085a23376506')
    const recipient = await suite.kem.deriveKeyPair(ikmR)
    assert.equal(toHex(new Uint8Array(await suite.kem.serializePrivateKey(recipient.privateKey))), toHex(skR))
    assert.equal(toHex(receiptPublicKey(skR)), toHex(pkR))
    assert.equal(toHex(AAD), '01711220c57535fe011c8576b73489bebff0a930037c8a6856cefb4ca647bea2eb7acb3e')
    const sealed = {
      enc: fromHex('97e74034d05ae717e284037f1115aba51253b578677c2e2b49256b148e270b10'),
      ct: fromHex([
        'bfcfda164748a503b4bc97baa9cf6c4e4c81c2b2025c5fb8e70284ff9f514d4a4ae38ad60d86c3501c5a0bde2fff222c2a0623c3d701e845cffcf889',
        'db9e8082aa98dda45f845de939df58d0c813eb9850867a2f621cfdcd6b2a064e7d6970fc54750c5586072af66d6c5ec346ed77b6e03a2e33530b560a',
        '9735b99671e7bb5a9072713cb807333f468b942bbc79346c51078be67b709b0a9a54d43b451d48df16dbf6502ded6fa2c5a7a2950bd9a9b9cac4d695',
        '169e2e6abc22cab54d8857def47c51d17284750544ae7b883675cb1e64b5696d6f3fca25a2bd4f6ba27336d919d8eb31d6e7bb750633d2109d7bd94c',
        '406bb4320779245c693ade17449a4360388a2a5fa88113d1f2bb8ccc5658fd6121446c71dd14dbefe458ea5ca2847acbfffba7164e401659028de152',
        '4c9700eff2a74aa48fef12d98689bc0c7b588b1c35115bc04bfa9ecb77b4d07c33306641af103b7b8d78a07181cf78cbe1eb16faea6ca3a3ad3d8899',
        'b24f5ae116405671ff20bd6d9561d459596132f36b5402257bc38df6c36b5a6bb14e30106d457467390b223e0706d04deacc38ffc72934fda35dfd05',
        '8de2aab6a9af799f5ddcc54fec8d2d01700115f44424f188a3eb17f6525f985723b9ffbd7497c7f0f1f846cb38d9bb3d836f4c7527bb95bb81825381',
        'eda940c58b2684766d3b62b3c78b28619dea1011b55132b44ea7c33df5b3dba3f7f5ab4c30e3c598d5d4a803aeba48e479cc2c353551f255d4ba06b2',
        '6867eaa7c5f01f8a7b6f39b7c1e8b26bcb8d2e790eaf56402260adc2b1b9823545e0c9415099ff7a2175838ee04dc0ac1cdc3d5933859ddced6d41fb',
        'e54adc77f95b0a4e1f42183ab08a9dc84ba82801ba934ba50d4116d0de56d6f8c318c77de82caccd1fb06b67b5a00f983f7247830420a98a18ffb5f5',
        '983403839a3d8656'
      ].join(''))
    }
    assert.deepEqual(await openReceipt(sealed, skR, AAD), RECEIPT)
    const again = await suite.seal({ recipientPublicKey: recipient.publicKey, info: RECEIPT_INFO, ekm: await suite.kem.deriveKeyPair(ikmE) }, encodeCanonical(RECEIPT), AAD)
    assert.equal(toHex(new Uint8Array(again.enc)), toHex(sealed.enc))
    assert.equal(toHex(new Uint8Array(again.ct)), toHex(sealed.ct))
  })
})
