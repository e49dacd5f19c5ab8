/**
 * A real OpenSSH server for tests: /usr/sbin/sshd on 127.0.0.1 at a free port, from a throwaway
 * config with its own host key; root may log in with a throwaway admin key only. Needs root (CI
 * runs as root); without sshd the tests say "skipped: install openssh-server", and fail under CI=true.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { generateGrantKeyPair } from '../../src/backends/ssh-keys.js'
import { probe, run, sshAvailable } from './ssh.js'

export const SSHD = '/usr/sbin/sshd'
export const SKIP_NO_SSHD = 'skipped: install openssh-server'

export function sshdAvailable (): boolean {
  return existsSync(SSHD) && process.getuid?.() === 0 && sshAvailable()
}

/** False (and the test skipped) without sshd, root and the OpenSSH client; under CI=true it fails instead. */
export function requireSshd (t: TestContext): boolean {
  if (sshdAvailable()) return true
  const why = existsSync(SSHD) ? 'these tests need root and the OpenSSH client' : SKIP_NO_SSHD
  if (process.env.CI === 'true') throw new Error(`sshd tests cannot run on CI: ${why}`)
  t.skip(why)
  return false
}

export interface Sshd {
  port: number
  dir: string
  /** The server's host key, `ssh-ed25519 AAAA…` (no comment). */
  hostKey: string
  /** Root's key: an OpenSSH PEM and its authorized_keys line. */
  adminKey: { privateKey: string, authorizedKey: string }
  /** What sshd wrote to stderr so far (-e). */
  log: () => string
  stop: () => Promise<void>
}

async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * StrictModes wants every directory from the key file up to the user's home (or /) root-owned and
 * not group/world-writable, which the temp dir's /tmp is not: /run or root's home do.
 */
function strictBase (): string | undefined {
  for (const base of ['/run', userInfo().homedir]) {
    try {
      const st = statSync(base)
      if (st.isDirectory() && st.uid === 0 && (st.mode & 0o022) === 0) return base
    } catch { /* next */ }
  }
  return undefined
}

export async function startSshd ({ deadlineMs = 20_000 }: { deadlineMs?: number } = {}): Promise<Sshd> {
  const base = strictBase()
  const dir = await mkdtemp(join(base ?? tmpdir(), 'cmesh-sshd-'))
  try {
    // sshd refuses to start without its privilege separation directory (the sshd service makes it).
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 })
    const keygen = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', join(dir, 'host_ed25519')])
    if (keygen.code !== 0) throw new Error(`ssh-keygen: ${keygen.stderr}`)
    const hostKey = (await readFile(join(dir, 'host_ed25519.pub'), 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ')
    const adminKey = generateGrantKeyPair('cmesh-test-admin')
    await writeFile(join(dir, 'root_authorized_keys'), `${adminKey.authorizedKey}\n`, { mode: 0o600 })

    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      await writeFile(join(dir, 'sshd_config'), [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_ed25519')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        'AuthorizedKeysFile .ssh/authorized_keys',
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        `StrictModes ${base === undefined ? 'no' : 'yes'}`,
        'PrintMotd no',
        'PrintLastLog no',
        'MaxStartups 100:30:200',
        'MaxSessions 20',
        'LoginGraceTime 60',
        'LogLevel INFO',
        'Match User root',
        `  AuthorizedKeysFile ${join(dir, 'root_authorized_keys')}`,
        ''
      ].join('\n'), { mode: 0o600 })
      const child = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
      let stderr = ''
      child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d })
      let exited = false
      child.once('exit', () => { exited = true })
      const deadline = Date.now() + deadlineMs
      while (!exited && Date.now() < deadline && await probe(port) !== 'connected') await new Promise((resolve) => setTimeout(resolve, 100))
      if (!exited && await probe(port) === 'connected') {
        return { port, dir, hostKey, adminKey, log: () => stderr, stop: async () => { await stopSshd(child); await rm(dir, { recursive: true, force: true }) } }
      }
      await stopSshd(child)
      // Another process may have taken the port between freePort() and sshd's bind.
      if (attempt >= 3 || !/Address already in use|Cannot bind/.test(stderr)) throw new Error(`sshd did not start (attempt ${attempt}): ${stderr}`)
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

async function stopSshd (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  // The listener and its per-connection monitors share the process group; user sessions have their own.
  try { process.kill(-(child.pid as number), 'SIGTERM') } catch { /* gone */ }
  const timer = setTimeout(() => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch { /* gone */ } }, 5000)
  await exited
  clearTimeout(timer)
}
