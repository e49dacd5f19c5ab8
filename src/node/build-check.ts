/**
 * TdxPlusReproducibleBuild: rebuild a card's image from its recipe and compare. The recipe's
 * command runs in a fresh copy of its source (a local directory, or a git URL with an optional
 * `#ref`) and writes a measurement manifest JSON ({mrTd, rtmr: [4], mrConfigId}, hex); its digest
 * must equal the card's attestationDigest. It runs only when an operator asks (`cmesh attest
 * check-build`): a node never executes commands it read off the network. Results are recorded in
 * `<data>/builds.json` by recipe and digest (`buildKey`), where the node's verified-level computation reads them.
 */
import { spawn } from 'node:child_process'
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesEqual, fromHex, toHex } from '../market/bytes.js'
import { encodeCanonical } from '../market/cbor.js'
import type { BuildRecipe } from '../market/provider-card.js'
import { measurementManifestDigest } from '../attestation/card-evidence.js'
import { writeFileAtomic } from './atomic-file.js'
import { NodeError } from './errors.js'

export const BUILDS_FILE = 'builds.json'

/**
 * What a build result is recorded under: the recipe and the digest it must reproduce. Not the card
 * digest, which changes with every refresh; a changed recipe or digest needs a new check.
 */
export function buildKey (recipe: BuildRecipe, attestationDigest: Uint8Array): string {
  return toHex(sha256(encodeCanonical({ source: recipe.source, command: recipe.command, manifest: recipe.manifest, digest: attestationDigest })))
}

export interface BuildResult {
  match: boolean
  expected: string
  rebuilt?: string
  error?: string
  atUnixSecs: number
}

function run (command: string, cwd: string, timeoutMs: number): Promise<{ code: number | null, output: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn('/bin/sh', ['-c', command], { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs })
    let output = ''
    const keep = (d: Buffer) => { output = (output + d.toString()).slice(-4000) }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    child.on('close', (code) => resolvePromise({ code, output }))
    child.on('error', (err) => resolvePromise({ code: -1, output: err.message }))
  })
}

async function checkout (source: string, into: string): Promise<void> {
  if (/^(https?|git|ssh):\/\/|^git@/.test(source)) {
    const [url, ref] = source.split('#')
    const r = await run(`git clone --quiet --depth 1 ${ref !== undefined ? `--branch '${ref.replace(/'/g, '')}' ` : ''}'${(url ?? '').replace(/'/g, '')}' .`, into, 300_000)
    if (r.code !== 0) throw new NodeError('INPUT_INVALID', `git clone of ${url ?? ''} failed: ${r.output.trim()}`)
    return
  }
  await cp(resolve(source), into, { recursive: true })
}

const hexField = (value: unknown, bytes: number, what: string): Uint8Array => {
  if (typeof value !== 'string' || !new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(value)) throw new NodeError('INPUT_INVALID', `manifest ${what} must be ${bytes} bytes of hex`)
  return fromHex(value)
}

export async function checkBuild (recipe: BuildRecipe, expectedDigest: Uint8Array, nowSecs: number, { timeoutMs = 600_000 } = {}): Promise<BuildResult> {
  const work = await mkdtemp(join(tmpdir(), 'cmesh-build-'))
  const base = { expected: toHex(expectedDigest), atUnixSecs: nowSecs }
  try {
    await checkout(recipe.source, work)
    const r = await run(recipe.command, work, timeoutMs)
    if (r.code !== 0) return { ...base, match: false, error: `recipe command exited ${r.code}: ${r.output.trim().slice(-500)}` }
    let manifest: any
    try {
      manifest = JSON.parse(await readFile(join(work, recipe.manifest), 'utf8'))
    } catch (err) {
      return { ...base, match: false, error: `no measurement manifest at ${recipe.manifest}: ${(err as Error).message}` }
    }
    if (!Array.isArray(manifest.rtmr) || manifest.rtmr.length !== 4) return { ...base, match: false, error: 'manifest rtmr must list 4 registers' }
    const digest = measurementManifestDigest({
      mrTd: hexField(manifest.mrTd, 48, 'mrTd'),
      rtmr: manifest.rtmr.map((r: unknown, i: number) => hexField(r, 48, `rtmr[${i}]`)),
      mrConfigId: hexField(manifest.mrConfigId, 48, 'mrConfigId')
    })
    return { ...base, rebuilt: toHex(digest), match: bytesEqual(digest, expectedDigest) }
  } catch (err) {
    return { ...base, match: false, error: (err as Error).message }
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

export async function readBuildResults (dataDir: string): Promise<Map<string, BuildResult>> {
  try {
    return new Map(Object.entries(JSON.parse(await readFile(join(dataDir, BUILDS_FILE), 'utf8'))))
  } catch {
    return new Map()
  }
}

export async function recordBuildResult (dataDir: string, key: string, result: BuildResult): Promise<void> {
  const all = await readBuildResults(dataDir)
  all.set(key, result)
  await writeFileAtomic(join(dataDir, BUILDS_FILE), new TextEncoder().encode(JSON.stringify(Object.fromEntries(all), null, 2) + '\n'))
}
