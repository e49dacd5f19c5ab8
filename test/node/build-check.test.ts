import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, mkdir, rm, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { measurementManifestDigest } from '../../src/attestation/card-evidence.js'
import { makeCard, testIdentity } from '../helpers/cards.js'
import { runCli } from '../helpers/cli.js'
import { toHex } from '../../src/market/index.js'

// A small deterministic recipe: MRTD is the SHA-384 of the "firmware" file, the other registers zero.
const BUILD_SH = `set -e
mkdir -p out
mrtd=$(sha384sum firmware.bin | cut -c1-96)
zero=$(printf '0%.0s' $(seq 1 96))
printf '{"mrTd":"%s","rtmr":["%s","%s","%s","%s"],"mrConfigId":"%s"}' "$mrtd" "$zero" "$zero" "$zero" "$zero" "$zero" > out/manifest.json
`

describe('cmesh attest check-build (TdxPlusReproducibleBuild)', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'cmesh-build-test-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  async function cardFor (firmware: string, source: string): Promise<string> {
    const mrTd = createHash('sha384').update(firmware).digest()
    const zero = new Uint8Array(48)
    const digest = measurementManifestDigest({ mrTd, rtmr: [zero, zero, zero, zero], mrConfigId: zero })
    const card = makeCard(testIdentity(1), { attestationLevel: 'TdxPlusReproducibleBuild', attestationDigest: digest, buildRecipe: { source, command: 'sh build.sh', manifest: 'out/manifest.json' } })
    const path = join(dir, `card-${firmware.length}.cbor`)
    await writeFile(path, card.bytes)
    return path
  }

  it('matches a recipe that rebuilds the declared measurements, records it, and refuses one that does not', async () => {
    const source = join(dir, 'src')
    await mkdir(source)
    await writeFile(join(source, 'build.sh'), BUILD_SH)
    await writeFile(join(source, 'firmware.bin'), 'TD firmware v1')
    const data = join(dir, 'data')
    await mkdir(data)

    const good = await cardFor('TD firmware v1', source)
    const refused = await runCli(['attest', 'check-build', good], dir)
    assert.equal(refused.code, 1, 'nothing runs without --trust-recipe')
    assert.match(refused.stdout, /command:\s+sh build.sh/)
    const r = await runCli(['attest', 'check-build', good, '--trust-recipe', '--data', data, '--json'], dir)
    assert.equal(r.code, 0, r.stdout + r.stderr)
    const result = JSON.parse(r.stdout)
    assert.equal(result.match, true)
    assert.equal(result.rebuilt, result.expected)
    const recorded = JSON.parse(await readFile(join(data, 'builds.json'), 'utf8'))
    assert.equal(Object.values(recorded).length, 1)

    // The card declares the measurements of different firmware than the source builds.
    const bad = await cardFor('TD firmware v2!', source)
    const m = await runCli(['attest', 'check-build', bad, '--trust-recipe'], dir)
    assert.equal(m.code, 1)
    assert.match(m.stdout, /MISMATCH/)
  })

  it('refuses a card without a recipe with a clear error', async () => {
    const path = join(dir, 'plain.cbor')
    await writeFile(path, makeCard(testIdentity(2)).bytes)
    const r = await runCli(['attest', 'check-build', path, '--trust-recipe'], dir)
    assert.equal(r.code, 1)
    assert.match(r.stderr, /INPUT_INVALID: the card of did:key:\S+ names no build recipe/)
  })
})
