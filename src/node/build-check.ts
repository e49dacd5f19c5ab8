/**
 * TdxPlusReproducibleBuild: rebuild a card's image from its recipe and compare. The recipe's
 * command runs in a fresh copy of its source (a local directory, or a git URL with an optional
 * `#ref`) and writes a measurement manifest JSON ({mrTd, rtmr: [4], mrConfigId}, hex); its digest
 * must equal the card's attestationDigest. It runs only when an operator asks (`cmesh attest
 * check-build`): a node never executes commands it read off the network. Results are recorded in
 * `<data>/builds.json` by recipe and digest (`buildKey`), where the node's verified-level computation reads them.
 * Every command runs in its own process group, killed as a group on timeout, on abort and when it
 * exits; the manifest must be a file inside the build directory, symlinks resolved.
 */
import { spawn } from 'node:child_process'
import { constants as fsConstants } from 'node:fs'
import { cp, mkdtemp, open, readFile, realpath, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { isAbsolute, join, relative, resolve, sep } from 'node:path'
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

/** SIGTERM first; what is still running this long after gets SIGKILL. */
const KILL_GRACE_MS = 2_000
/** After the shell exits, how long its pipes may take to deliver what was written before. */
const DRAIN_MS = 500
const MAX_MANIFEST_BYTES = 64 * 1024

interface RunResult {
  code: number | null
  output: string
  /** Set when the timeout or the caller's signal ended the command (its whole group was killed). */
  stoppedBy?: 'timeout' | 'abort'
}

function killGroup (pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: the group is gone already.
  }
}

/**
 * Runs `command` with /bin/sh in its own process group (`detached`), so a timeout or an abort kills
 * everything it started, not just the shell. Resolves once the shell has exited and its pipes have
 * drained, or DRAIN_MS later if a process it left behind holds them open; whatever is left in the
 * group is killed then too.
 */
function run (command: string, cwd: string, { timeoutMs, signal }: { timeoutMs: number, signal?: AbortSignal }): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    // Listeners on each signal (not AbortSignal.any): a listened-to timeout signal is never collected.
    const timeout = AbortSignal.timeout(timeoutMs)
    const child = spawn('/bin/sh', ['-c', command], { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let output = ''
    const keep = (d: string) => { output = (output + d).slice(-4000) }
    child.stdout.setEncoding('utf8').on('data', keep)
    child.stderr.setEncoding('utf8').on('data', keep)
    let stoppedBy: RunResult['stoppedBy']
    let killTimer: NodeJS.Timeout | undefined
    const onStop = () => {
      if (stoppedBy !== undefined) return
      stoppedBy = signal?.aborted === true ? 'abort' : 'timeout'
      killGroup(child.pid, 'SIGTERM')
      killTimer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS)
    }
    let settled = false
    const finish = (code: number | null) => {
      if (settled) return
      settled = true
      timeout.removeEventListener('abort', onStop)
      signal?.removeEventListener('abort', onStop)
      clearTimeout(killTimer)
      killGroup(child.pid, 'SIGKILL')
      child.stdout.destroy()
      child.stderr.destroy()
      resolvePromise({ code, output, ...(stoppedBy !== undefined ? { stoppedBy } : {}) })
    }
    child.on('exit', (code) => {
      const drained = setTimeout(() => finish(code), DRAIN_MS)
      child.on('close', () => { clearTimeout(drained); finish(code) })
    })
    child.on('error', (err) => { output = err.message; finish(-1) })
    if (signal?.aborted === true) onStop()
    else {
      timeout.addEventListener('abort', onStop, { once: true })
      signal?.addEventListener('abort', onStop, { once: true })
    }
  })
}

async function checkout (source: string, into: string, signal?: AbortSignal): Promise<void> {
  if (/^(https?|git|ssh):\/\/|^git@/.test(source)) {
    const [url, ref] = source.split('#')
    const r = await run(`git clone --quiet --depth 1 ${ref !== undefined ? `--branch '${ref.replace(/'/g, '')}' ` : ''}'${(url ?? '').replace(/'/g, '')}' .`, into, { timeoutMs: 300_000, ...(signal !== undefined ? { signal } : {}) })
    signal?.throwIfAborted()
    if (r.code !== 0) throw new NodeError('INPUT_INVALID', `git clone of ${url ?? ''} failed${r.stoppedBy === 'timeout' ? ' (timed out)' : ''}: ${r.output.trim()}`)
    return
  }
  await cp(resolve(source), into, { recursive: true })
}

const hexField = (value: unknown, bytes: number, what: string): Uint8Array => {
  if (typeof value !== 'string' || !new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(value)) throw new NodeError('INPUT_INVALID', `manifest ${what} must be ${bytes} bytes of hex`)
  return fromHex(value)
}

const inside = (dir: string, path: string) => {
  const rel = relative(dir, path)
  return rel !== '' && rel !== '..' && !rel.startsWith('..' + sep) && !isAbsolute(rel)
}

/** The manifest path as the card gives it, refused before anything runs unless it is relative and stays inside the build directory. */
function manifestPath (work: string, manifest: string): string {
  const path = resolve(work, manifest)
  if (manifest.length === 0 || manifest.includes('\0') || isAbsolute(manifest) || !inside(work, path)) {
    throw new NodeError('INPUT_INVALID', `the recipe's manifest path ${JSON.stringify(manifest)} is not a relative path inside the build directory`)
  }
  return path
}

/**
 * Reads the manifest the build wrote, after resolving symlinks: a file that resolves outside the
 * build directory is refused (NodeError); the file opened, without following a final symlink, must
 * be the one checked. Anything else that goes wrong is the build's failure, reported as `error`.
 */
async function readManifest (work: string, manifest: string): Promise<{ text: string } | { error: string }> {
  let real: string
  try {
    real = await realpath(manifestPath(work, manifest))
  } catch (err: any) {
    if (err instanceof NodeError) throw err
    return { error: `no measurement manifest at ${manifest} (${err.code ?? err.message})` }
  }
  if (!inside(await realpath(work), real)) throw new NodeError('INPUT_INVALID', `the recipe's manifest ${JSON.stringify(manifest)} resolves outside the build directory`)
  let file
  try {
    file = await open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK)
  } catch (err: any) {
    return { error: `cannot open the measurement manifest at ${manifest} (${err.code ?? err.message})` }
  }
  try {
    const [opened, checked] = await Promise.all([file.stat(), stat(real)])
    if (opened.dev !== checked.dev || opened.ino !== checked.ino) throw new NodeError('INPUT_INVALID', `the recipe's manifest ${JSON.stringify(manifest)} was replaced while it was read`)
    if (!opened.isFile()) return { error: `the measurement manifest at ${manifest} is not a regular file` }
    if (opened.size > MAX_MANIFEST_BYTES) return { error: `the measurement manifest at ${manifest} is larger than ${MAX_MANIFEST_BYTES} bytes` }
    return { text: await file.readFile('utf8') }
  } finally {
    await file.close()
  }
}

export interface CheckBuildOptions {
  timeoutMs?: number
  /** Aborting kills the recipe's process group and rejects with the signal's reason. */
  signal?: AbortSignal
}

/**
 * Rebuilds and compares. A failed or timed-out build is a result (`match: false`, `error`); a
 * manifest path outside the build directory is a NodeError (INPUT_INVALID), refused before the
 * recipe runs when the path alone shows it, after it when a symlink does.
 */
export async function checkBuild (recipe: BuildRecipe, expectedDigest: Uint8Array, nowSecs: number, { timeoutMs = 600_000, signal }: CheckBuildOptions = {}): Promise<BuildResult> {
  signal?.throwIfAborted()
  const work = await mkdtemp(join(tmpdir(), 'cmesh-build-'))
  const base = { expected: toHex(expectedDigest), atUnixSecs: nowSecs }
  try {
    manifestPath(work, recipe.manifest)
    try {
      await checkout(recipe.source, work, signal)
      const r = await run(recipe.command, work, { timeoutMs, ...(signal !== undefined ? { signal } : {}) })
      signal?.throwIfAborted()
      if (r.stoppedBy === 'timeout') return { ...base, match: false, error: `recipe command timed out after ${timeoutMs / 1000} s (its process group was killed): ${r.output.trim().slice(-500)}` }
      if (r.code !== 0) return { ...base, match: false, error: `recipe command exited ${r.code}: ${r.output.trim().slice(-500)}` }
    } catch (err) {
      if (signal?.aborted === true) throw err
      return { ...base, match: false, error: (err as Error).message }
    }
    const read = await readManifest(work, recipe.manifest)
    if ('error' in read) return { ...base, match: false, error: read.error }
    let manifest: any
    try {
      manifest = JSON.parse(read.text)
    } catch {
      return { ...base, match: false, error: `the measurement manifest at ${recipe.manifest} is not JSON` }
    }
    if (typeof manifest !== 'object' || manifest === null || !Array.isArray(manifest.rtmr) || manifest.rtmr.length !== 4) return { ...base, match: false, error: 'manifest rtmr must list 4 registers' }
    try {
      const digest = measurementManifestDigest({
        mrTd: hexField(manifest.mrTd, 48, 'mrTd'),
        rtmr: manifest.rtmr.map((r: unknown, i: number) => hexField(r, 48, `rtmr[${i}]`)),
        mrConfigId: hexField(manifest.mrConfigId, 48, 'mrConfigId')
      })
      return { ...base, rebuilt: toHex(digest), match: bytesEqual(digest, expectedDigest) }
    } catch (err) {
      return { ...base, match: false, error: (err as Error).message }
    }
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
