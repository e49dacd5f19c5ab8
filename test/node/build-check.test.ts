import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, mkdir, rm, writeFile, readFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { measurementManifestDigest } from '../../src/attestation/card-evidence.js'
import { checkBuild } from '../../src/node/build-check.js'
import { NodeError } from '../../src/node/errors.js'
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

/** Alive, for a pid: signal 0 reaches it and it is not a zombie nobody reaped yet (PID 1 of a container may not). */
function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err: any) {
    return err.code !== 'ESRCH'
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

async function until (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const pidsIn = async (file: string): Promise<number[]> => {
  try {
    return (await readFile(file, 'utf8')).split(/\s+/).filter((l) => l !== '').map(Number)
  } catch {
    return []
  }
}

// A recipe that leaves children behind holding its stdout: a shell, a backgrounded sleep, a nested shell and its sleep.
const lingering = (pids: string) => `echo $$ >> '${pids}'
sleep 120 &
echo $! >> '${pids}'
sh -c 'echo $$ >> "$0"; exec sleep 120' '${pids}' &
echo $! >> '${pids}'
wait
`

describe('cmesh attest check-build: the recipe\'s process group and the manifest path', () => {
  let dir: string
  let source: string
  const zero = new Uint8Array(48)
  const digest = measurementManifestDigest({ mrTd: zero, rtmr: [zero, zero, zero, zero], mrConfigId: zero })
  const manifestJson = JSON.stringify({ mrTd: toHex(zero), rtmr: [toHex(zero), toHex(zero), toHex(zero), toHex(zero)], mrConfigId: toHex(zero) })
  const now = () => Math.floor(Date.now() / 1000)
  const refused = (e: unknown) => e instanceof NodeError && e.code === 'INPUT_INVALID'
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cmesh-build-test-'))
    source = join(dir, 'src')
    await mkdir(source)
    await writeFile(join(source, 'README'), 'an empty source tree\n')
    // A file outside any build directory holding a manifest that would match.
    await writeFile(join(dir, 'outside.json'), manifestJson)
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('on timeout, kills the whole group (grandchildren holding stdout included) and returns promptly', async () => {
    const pids = join(dir, 'timeout.pids')
    const started = Date.now()
    const r = await Promise.race([
      checkBuild({ source, command: lingering(pids), manifest: 'manifest.json' }, digest, now(), { timeoutMs: 2000 }),
      new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('checkBuild still running 40 s after a 2 s timeout')), 40_000).unref())
    ])
    assert.equal(r.match, false)
    assert.match(r.error ?? '', /timed out/)
    const all = await pidsIn(pids)
    assert.equal(all.length, 4, `the recipe wrote its pids: ${all.join(' ')}`)
    await until(`processes ${all.join(' ')} to be gone`, () => all.every((pid) => !alive(pid)))
    // Not a timing assertion: far below the 120 s the grandchildren would have held the pipes.
    assert.ok(Date.now() - started < 40_000)
  })

  it('kills the group when its signal aborts (the CLI passes SIGINT/SIGTERM on) and rejects', async () => {
    const pids = join(dir, 'abort.pids')
    const aborter = new AbortController()
    const running = checkBuild({ source, command: lingering(pids), manifest: 'manifest.json' }, digest, now(), { signal: aborter.signal })
    await until('the recipe to start its children', async () => (await pidsIn(pids)).length === 4)
    aborter.abort(new Error('interrupted'))
    await assert.rejects(running, /interrupted/)
    const all = await pidsIn(pids)
    await until(`processes ${all.join(' ')} to be gone`, () => all.every((pid) => !alive(pid)))
  })

  it('refuses a manifest path outside the build directory before running anything: ../../../../etc/passwd, /etc/passwd', async () => {
    const marker = join(dir, 'ran')
    for (const manifest of ['../../../../etc/passwd', '/etc/passwd', `../${dir.split('/').pop() ?? ''}/outside.json`, 'out/../../x.json']) {
      await assert.rejects(checkBuild({ source, command: `touch '${marker}'`, manifest }, digest, now()), refused, manifest)
    }
    await assert.rejects(readFile(marker), { code: 'ENOENT' }, 'the recipe never ran')
    const cardPath = join(dir, 'passwd-card.cbor')
    await writeFile(cardPath, makeCard(testIdentity(3), { attestationLevel: 'TdxPlusReproducibleBuild', attestationDigest: digest, buildRecipe: { source, command: 'true', manifest: '../../../../etc/passwd' } }).bytes)
    const cli = await runCli(['attest', 'check-build', cardPath, '--trust-recipe'], dir)
    assert.equal(cli.code, 1)
    assert.match(cli.stderr, /INPUT_INVALID: the recipe's manifest path "..\/..\/..\/..\/etc\/passwd" is not a relative path inside the build directory/)
    assert.doesNotMatch(cli.stdout + cli.stderr, /root:/)
  })

  it('refuses a manifest that a symlink (file or directory) takes outside; follows one that stays inside', async () => {
    const outside = join(dir, 'outside.json')
    for (const command of [`ln -s '${outside}' manifest.json`, `ln -s /etc/passwd manifest.json`, `mkdir -p real && ln -s '${dir}' out && ln -s out/outside.json manifest.json`]) {
      await assert.rejects(checkBuild({ source, command, manifest: 'manifest.json' }, digest, now()), refused, command)
    }
    const viaDir = await checkBuild({ source, command: `ln -s '${dir}' out`, manifest: 'out/outside.json' }, digest, now()).then(() => 'resolved', (e) => e)
    assert.ok(refused(viaDir), `a directory symlink out: ${String(viaDir)}`)
    const inside = await checkBuild({ source, command: `mkdir -p out && printf '%s' '${manifestJson}' > out/m.json && ln -s out/m.json manifest.json`, manifest: 'manifest.json' }, digest, now())
    assert.equal(inside.match, true, inside.error)
  })
})
