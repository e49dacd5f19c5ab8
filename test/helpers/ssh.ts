/** The real OpenSSH client (`ssh`, `ssh-keyscan`, `ssh-keygen`) driven from tests. */
import { spawn, spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import type { TestContext } from 'node:test'

export const SKIP_NO_SSH = 'skipped: install openssh-client'

let available: boolean | undefined

export function sshAvailable (): boolean {
  available ??= ['ssh', 'ssh-keyscan', 'ssh-keygen'].every((bin) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0)
  return available
}

/** False (and the test skipped) without OpenSSH; under CI=true a missing client fails the test instead. */
export function requireSsh (t: TestContext): boolean {
  if (sshAvailable()) return true
  if (process.env.CI === 'true') throw new Error('OpenSSH client missing on CI (ssh, ssh-keyscan, ssh-keygen)')
  t.skip(SKIP_NO_SSH)
  return false
}

export interface Run { code: number | null, stdout: string, stderr: string }

export async function run (cmd: string, args: string[], { input, timeoutMs = 30_000 }: { input?: string, timeoutMs?: number } = {}): Promise<Run> {
  const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], signal: AbortSignal.timeout(timeoutMs), killSignal: 'SIGKILL' })
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  if (input !== undefined) child.stdin?.end(input)
  return await new Promise((resolve, reject) => {
    child.once('error', (err) => { reject(new Error(`${cmd} failed: ${err.message}; stderr: ${stderr}`)) })
    child.once('close', (code) => { resolve({ code, stdout, stderr }) })
  })
}

export interface SshTarget { port: number, keyFile: string, knownHosts: string, user?: string }

/** `ssh` with host key pinning and nothing from the user's own config, agent or keys. */
export async function ssh ({ port, keyFile, knownHosts, user = 'cmesh' }: SshTarget, remote: string[], options: { input?: string, extra?: string[] } = {}): Promise<Run> {
  return await run('ssh', [
    '-F', '/dev/null',
    '-i', keyFile,
    '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
    '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes', '-o', 'PasswordAuthentication=no', '-o', 'KbdInteractiveAuthentication=no',
    '-o', 'ConnectTimeout=20', '-o', 'LogLevel=ERROR',
    ...(options.extra ?? []),
    '-p', String(port), `${user}@127.0.0.1`, ...remote
  ], { input: options.input })
}

/** The server's ed25519 host key line (`ssh-ed25519 AAAA…`), fetched by OpenSSH itself. */
export async function keyscan (port: number): Promise<string> {
  const r = await run('ssh-keyscan', ['-T', '20', '-t', 'ed25519', '-p', String(port), '127.0.0.1'])
  const line = r.stdout.split('\n').find((l) => l.startsWith(`[127.0.0.1]:${port} `))
  if (line === undefined) throw new Error(`ssh-keyscan found no host key: ${r.stderr}`)
  return line.slice(line.indexOf(' ') + 1).trim()
}

/** What `ssh-keygen -lf` prints as the fingerprint of a key file's first key. */
export async function sshKeygenFingerprint (file: string): Promise<string> {
  const r = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', file])
  const fp = r.stdout.split(' ')[1]
  if (r.code !== 0 || fp === undefined) throw new Error(`ssh-keygen -lf failed: ${r.stderr}`)
  return fp
}

export async function writeKnownHosts (dir: string, port: number, hostKeyLine: string): Promise<string> {
  const file = join(dir, `known_hosts-${port}`)
  await writeFile(file, `[127.0.0.1]:${port} ${hostKeyLine}\n`)
  return file
}

export async function writePrivateKey (dir: string, name: string, pem: string): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, pem, { mode: 0o600 })
  return file
}

/** Resolves to the connect error code (ECONNREFUSED when nothing listens), or 'connected'. */
export async function probe (port: number): Promise<string> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve('connected') })
    socket.once('error', (err: NodeJS.ErrnoException) => { resolve(err.code ?? 'error') })
  })
}

/** Polls `check` until it holds or the deadline passes (CI has two busy cores). */
export async function until (check: () => boolean | Promise<boolean>, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
