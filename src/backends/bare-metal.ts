/**
 * Bare-metal backend: machines the operator already runs, reached over SSH (ssh2) as an admin
 * (normally root) with a pinned host key. A grant becomes a fresh Unix user on one of those hosts —
 * `cm` + 12 hex digits of sha256(grant id), GECOS `cmesh-grant=<id> valid-to=… cpus=… mem-mib=… disk-gib=…`
 * (passwd fields are colon-separated, so the marker uses `=`) — whose only way in is the grant's
 * public key, and whose user_data runs as that user. Ending the grant kills every process of the
 * user and deletes it with its home. A host runs as many grants as fit its declared capacity
 * (tracked here, in memory; the kernel does not enforce it).
 *
 * Everything sent to a host is a constant script run by `/bin/sh -c` with its values as positional
 * arguments, each single-quoted; the values are ours (the derived user name, the escaped GECOS).
 * What the requester supplies — user_data and the public key — travels on the command's stdin and
 * is written to files by the grant's own user, never by root and never into a command line.
 */
import { userDataWithFiles } from './grant-files.js'
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIPv4, isIPv6 } from 'node:net'
import ssh2 from 'ssh2'
import type { Client, ClientChannel } from 'ssh2'
import {
  BackendError, checkCapabilities, type Backend, type BackendCapabilities, type BackendErrorCode, type CanSatisfy,
  type Grant, type Instance, type ProvisionOptions, defaultBackendLogger, type BackendLogger } from './backend.js'
import { hostKeyFingerprint, parsePublicKey } from './ssh-keys.js'

export const DEFAULT_CONNECT_TIMEOUT_MS = 20_000
export const DEFAULT_USER_DATA_TIMEOUT_MS = 600_000
export const DEFAULT_COMMAND_TIMEOUT_MS = 120_000
const MAX_USER_DATA_BYTES = 64 * 1024
const MAX_GRANT_ID_CHARS = 200
const MAX_TIMER_MS = 2 ** 31 - 1 // setTimeout's ceiling; longer grants re-arm
const RETRY_TERMINATE_MS = 60_000
const MAX_OUTPUT_BYTES = 64 * 1024
/** Exit status of the create script when the user already exists (then it is not ours to remove). */
const EXIT_USER_EXISTS = 17

/** The codes this backend adds to `BackendErrorCode` (they are still `BackendError`s). */
export type BareMetalErrorCode = BackendErrorCode | 'BACKEND_HOST_KEY_MISMATCH' | 'BACKEND_UNREACHABLE' | 'BACKEND_TERMINATE_FAILED'

export interface BareMetalHost {
  /** Stable name, unique in this backend: `[A-Za-z0-9._-]{1,64}` (it is the first half of `Instance.handle`). */
  name: string
  /** What requesters connect to: a DNS name or an IP literal. */
  address: string
  port: number
  /** Admin login (normally root; any other admin must have passwordless `sudo`). */
  user: string
  /** The admin's private key, OpenSSH PEM, unencrypted; or give `privateKeyFile`. */
  privateKey?: string
  /** A file holding `privateKey` (read once, at construction). */
  privateKeyFile?: string
  /** The host's key, pinned: `<type> <base64>` (a known_hosts line without the host; a comment is ignored). */
  hostKey: string
  regions: string[]
  maxCpu: number
  maxMemoryMiB: number
  maxDiskGiB: number
  tdx: boolean
}

export interface BareMetalBackendOptions {
  name: string
  hosts: BareMetalHost[]
  log?: BackendLogger
  /** Milliseconds since the epoch (Date.now's shape); injected by tests. */
  now?: () => number
  /** TCP connect + SSH handshake (default 20 s). */
  connectTimeoutMs?: number
  /** How long user_data may run before it is killed and the grant fails (default 10 min). */
  userDataTimeoutMs?: number
  /** Each admin command (create, terminate, list); default 2 min. */
  commandTimeoutMs?: number
}

/** A per-grant user found on a host (`listGrantUsers`), from its GECOS marker. */
export interface GrantUser {
  host: string
  user: string
  uid: number
  grantId: string
  validToUnixSecs?: number
  cpus?: number
  memMiB?: number
  diskGiB?: number
  /** Whether this backend (this process) is tracking the grant. */
  tracked: boolean
}

export type HostGrantUsers =
  | { host: string, ok: true, users: GrantUser[] }
  | { host: string, ok: false, code: string, error: string }

export type HostHealth =
  | { host: string, ok: true, latencyMs: number }
  | { host: string, ok: false, code: string, error: string }

/** `ok` while at least one host answers (provisioning skips none, though: see checkHealth). */
export interface BareMetalHealth { ok: boolean, reason?: string, hosts: HostHealth[] }

export interface HostFree { host: string, cpus: number, memMiB: number, diskGiB: number }

interface HostState {
  readonly config: BareMetalHost
  readonly pinnedBlob: Buffer
  readonly pinnedLine: string
  readonly pinnedFingerprint: string
  readonly hostKeyAlgorithms: string[]
  used: { cpus: number, memMiB: number, diskGiB: number }
}

interface Running {
  readonly grantId: string
  readonly host: HostState
  readonly user: string
  readonly need: { cpus: number, memMiB: number, diskGiB: number }
  instance?: Instance
  validToUnixSecs: number
  timer?: NodeJS.Timeout
  stopping?: Promise<void>
  released: boolean
  readonly ended: Promise<void>
  readonly markEnded: () => void
}

interface ExecResult { code: number | null, signal?: string, stdout: string, stderr: string, timedOut: boolean }

/** `cm` + 12 hex digits of sha256(grant id): a valid POSIX/Debian user name, 14 characters. */
export function grantUserName (grantId: string): string {
  return `cm${createHash('sha256').update(grantId, 'utf8').digest('hex').slice(0, 12)}`
}

const GRANT_USER = /^cm[0-9a-f]{12}$/
const MARKER = 'cmesh-grant='

/** The GECOS marker: the grant id percent-encoded (no `:`, `,`, space or newline survives), then the grant's terms. */
export function grantMarker (grant: Pick<Grant, 'id' | 'validToUnixSecs' | 'cpus' | 'memMiB' | 'diskGiB'>, provision: string): string {
  const id = Array.from(Buffer.from(grant.id, 'utf8'), (b) => {
    const c = String.fromCharCode(b)
    return /[A-Za-z0-9._~-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }).join('')
  return `${MARKER}${id} valid-to=${Math.floor(grant.validToUnixSecs)} cpus=${grant.cpus} mem-mib=${grant.memMiB} disk-gib=${grant.diskGiB} provision=${provision}`
}

/** The marker's fields, or undefined when the GECOS is not ours. */
export function parseGrantMarker (gecos: string): Omit<GrantUser, 'host' | 'user' | 'uid' | 'tracked'> | undefined {
  if (!gecos.startsWith(MARKER)) return undefined
  const fields = new Map<string, string>()
  const [first = '', ...rest] = gecos.split(' ')
  let grantId: string
  try { grantId = decodeURIComponent(first.slice(MARKER.length)) } catch { return undefined }
  if (grantId === '') return undefined
  for (const f of rest) {
    const eq = f.indexOf('=')
    if (eq > 0) fields.set(f.slice(0, eq), f.slice(eq + 1))
  }
  const num = (k: string): number | undefined => {
    const v = fields.get(k)
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined
  }
  return { grantId, validToUnixSecs: num('valid-to'), cpus: num('cpus'), memMiB: num('mem-mib'), diskGiB: num('disk-gib') }
}

/** POSIX shell single-quoting: the result is one word whatever the input. */
export function shq (s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`
}

// ---- the scripts (constants; values come in as "$1", "$2", …) ----

const CREATE_USER = `set -eu
u=$1 gecos=$2
if getent passwd "$u" >/dev/null 2>&1; then echo "user $u already exists" >&2; exit ${EXIT_USER_EXISTS}; fi
command -v runuser >/dev/null 2>&1 || { echo "runuser (util-linux) is missing" >&2; exit 1; }
# -p '*': no password can ever match, yet the account is not "locked" (sshd without PAM refuses locked ones).
useradd -m -s /bin/sh -p '*' -c "$gecos" "$u"
`

/** Runs $2 (a constant script) as user $1 with a minimal environment, in its home, stdin passed through. */
const AS_USER = `set -eu
u=$1 script=$2
home=$(getent passwd "$u" | cut -d: -f6)
[ -n "$home" ] || { echo "no such user $u" >&2; exit 1; }
exec runuser -u "$u" -- env -i HOME="$home" USER="$u" LOGNAME="$u" SHELL=/bin/sh PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 /bin/sh -c 'cd "$HOME" && eval "$1"' sh "$script"
`

const INSTALL_KEY = 'umask 077 && mkdir -p .ssh && chmod 700 .ssh && cat > .ssh/authorized_keys && chmod 600 .ssh/authorized_keys'
const WRITE_USER_DATA = 'umask 077 && mkdir -p .cmesh && cat > .cmesh/user-data.sh'
const RUN_USER_DATA = 'exec /bin/sh .cmesh/user-data.sh </dev/null >.cmesh/user-data.log 2>&1'

/**
 * Ends user $1 if it is a grant user (and, given $2, only if its marker carries that provision
 * token: a failed provision never removes an earlier provision's user). Expires it (no new logins),
 * SIGSTOPs+SIGKILLs every process with its uid (real, effective, saved or fs; zombies are already
 * dead) until none is left, deletes it with its home, then what it left in /tmp, /var/tmp and
 * /dev/shm. A user already gone is success.
 */
const REMOVE_USER = `set -u
u=$1
case "$u" in cm[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;; *) echo "refusing: $u is not a grant user name" >&2; exit 2;; esac
entry=$(getent passwd "$u") || exit 0
gecos=$(printf '%s\\n' "$entry" | cut -d: -f5)
case "$gecos" in ${MARKER}*) ;; *) echo "refusing to delete $u: no cmesh grant marker" >&2; exit 3;; esac
if [ -n "\${2:-}" ]; then case "$gecos" in *" provision=$2") ;; *) exit 0;; esac; fi
uid=$(printf '%s\\n' "$entry" | cut -d: -f3)
case "$uid" in ''|0|*[!0-9]*) echo "refusing: $u has uid '$uid'" >&2; exit 3;; esac
usermod -e 1 "$u" >/dev/null 2>&1 || true
pids() {
  grep -s -e '^State:' -e '^Uid:' /proc/[0-9]*/status | while IFS='/: 	' read -r _ _ pid _ key a b c d _; do
    if [ "$key" = State ]; then st=$a; continue; fi
    [ "$st" = Z ] && continue
    if [ "$a" = "$uid" ] || [ "$b" = "$uid" ] || [ "$c" = "$uid" ] || [ "$d" = "$uid" ]; then echo "$pid"; fi
  done
}
i=0
while :; do
  list=$(pids)
  [ -z "$list" ] && break
  kill -STOP $list 2>/dev/null
  kill -KILL $list 2>/dev/null
  i=$((i + 1))
  if [ "$i" -ge 200 ]; then echo "processes of $u survive SIGKILL: $list" >&2; exit 4; fi
  sleep 0.1 2>/dev/null || sleep 1
done
command -v crontab >/dev/null 2>&1 && crontab -r -u "$u" >/dev/null 2>&1
out=$(userdel -r -f "$u" 2>&1)
if getent passwd "$u" >/dev/null 2>&1; then echo "userdel failed: $out" >&2; exit 5; fi
find /tmp /var/tmp /dev/shm -xdev -uid "$uid" -delete >/dev/null 2>&1
exit 0
`

const LIST_USERS = 'getent passwd'

export class BareMetalBackend implements Backend {
  readonly kind = 'bare-metal'
  readonly placesGrantFiles = true
  readonly name: string
  private readonly hosts: HostState[]
  private readonly log: BackendLogger
  private readonly now: () => number
  private readonly connectTimeoutMs: number
  private readonly userDataTimeoutMs: number
  private readonly commandTimeoutMs: number
  private readonly running = new Map<string, Running>()

  constructor (options: BareMetalBackendOptions) {
    this.name = options.name
    this.log = options.log ?? defaultBackendLogger(`cmesh:backend:bare-metal:${options.name}`)
    this.now = options.now ?? Date.now
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS
    this.userDataTimeoutMs = options.userDataTimeoutMs ?? DEFAULT_USER_DATA_TIMEOUT_MS
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
    if (!Array.isArray(options.hosts)) throw new TypeError(`bare-metal backend ${options.name}: hosts must be a list`)
    const names = new Set<string>()
    this.hosts = options.hosts.map((h) => {
      const state = hostState(h)
      if (names.has(h.name)) throw new TypeError(`bare-metal host name "${h.name}" used twice`)
      names.add(h.name)
      return state
    })
  }

  capabilities (): BackendCapabilities {
    const regions = [...new Set(this.hosts.flatMap((h) => h.config.regions))]
    const max = (f: (h: BareMetalHost) => number): number => Math.max(0, ...this.hosts.map((h) => f(h.config)))
    return { regions, maxCpu: max((h) => h.maxCpu), maxMemoryMiB: max((h) => h.maxMemoryMiB), maxDiskGiB: max((h) => h.maxDiskGiB), tdx: this.hosts.some((h) => h.config.tdx) }
  }

  /** What each host has left now (Fleet's "most free capacity" tie-break). */
  freeCapacity (): HostFree[] {
    return this.hosts.map((h) => ({ host: h.config.name, ...free(h) }))
  }

  canSatisfy (grant: Grant): CanSatisfy {
    const verdict = checkCapabilities(this.capabilities(), grant, Math.floor(this.now() / 1000))
    if (!verdict.ok) return verdict
    if (grant.id.length === 0 || grant.id.length > MAX_GRANT_ID_CHARS) return { ok: false, reason: `grant id must be 1-${MAX_GRANT_ID_CHARS} characters` }
    if (grant.userData.length > MAX_USER_DATA_BYTES) return { ok: false, reason: `user_data is ${grant.userData.length} bytes; at most ${MAX_USER_DATA_BYTES}` }
    if (this.running.has(grant.id)) return { ok: false, reason: 'grant already provisioned' }
    try { parsePublicKey(grant.authorizedKey) } catch { return { ok: false, reason: 'authorized key is not an OpenSSH public key' } }
    if (this.pickHost(grant) === undefined) {
      const suitable = this.hosts.some((h) => fitsStatically(h, grant))
      return { ok: false, reason: suitable ? 'no host has enough free capacity' : 'no single host offers this region, TDX and size together' }
    }
    return { ok: true }
  }

  async provision (grant: Grant, { onProgress, signal }: ProvisionOptions = {}): Promise<Instance> {
    const verdict = this.canSatisfy(grant)
    if (!verdict.ok) throw new BackendError('BACKEND_CANNOT_SATISFY', verdict.reason, { grantId: grant.id })
    if (signal?.aborted === true) throw new BackendError('BACKEND_ABORTED', 'provisioning aborted', { grantId: grant.id })
    const host = this.pickHost(grant) as HostState
    const key = parsePublicKey(grant.authorizedKey)
    // Rebuilt from the parsed key: no options (`command=`, `from=`), no comment, one line.
    const keyLine = `${key.type} ${key.getPublicSSH().toString('base64')}\n`
    const user = grantUserName(grant.id)
    const need = { cpus: grant.cpus, memMiB: grant.memMiB, diskGiB: grant.diskGiB }
    let markEnded = (): void => {}
    const ended = new Promise<void>((resolve) => { markEnded = resolve })
    const run: Running = { grantId: grant.id, host, user, need, validToUnixSecs: grant.validToUnixSecs, released: false, ended, markEnded }
    // Claimed and reserved before the first await: one grant is never provisioned twice, a host never overbooked.
    this.running.set(grant.id, run)
    reserve(host, need)
    onProgress?.({ type: 'provision:starting', detail: { grantId: grant.id } })

    let conn: Client | undefined
    let created = false // true from the moment useradd may have run
    const token = randomBytes(8).toString('hex')
    const meta = { grantId: grant.id, host: host.config.name, user }
    try {
      conn = await this.connect(host, signal)
      onProgress?.({ type: 'provision:booting', detail: { host: host.config.address, port: host.config.port } })

      created = true
      const made = await this.exec(conn, host, adminCommand(host, CREATE_USER, [user, grantMarker(grant, token)]), { signal })
      if (made.code === EXIT_USER_EXISTS) {
        created = false
        throw new BackendError('BACKEND_PROVISION_FAILED', `user ${user} already exists on ${host.config.name}`, meta)
      }
      expectOk(made, 'creating the grant user', meta)
      expectOk(await this.exec(conn, host, adminCommand(host, AS_USER, [user, INSTALL_KEY]), { stdin: keyLine, signal }), 'installing the authorized key', meta)
      expectOk(await this.exec(conn, host, adminCommand(host, AS_USER, [user, WRITE_USER_DATA]), { stdin: userDataWithFiles(grant.userData, grant.files ?? [], { home: '$HOME', innerPath: '.cmesh/user-data.inner.sh' }), signal }), 'writing user_data', meta)

      onProgress?.({ type: 'provision:user-data', detail: { bytes: grant.userData.length } })
      const ran = await this.exec(conn, host, adminCommand(host, AS_USER, [user, RUN_USER_DATA]), { signal, timeoutMs: this.userDataTimeoutMs })
      if (ran.timedOut) throw new BackendError('BACKEND_USER_DATA_TIMEOUT', `user_data still running after ${this.userDataTimeoutMs} ms; killed`, { ...meta, timeoutMs: this.userDataTimeoutMs })
      if (ran.code !== 0) throw new BackendError('BACKEND_USER_DATA_FAILED', `user_data exited with ${ran.code ?? ran.signal ?? 'nothing'}`, { ...meta, exitCode: ran.code })
      if (run.stopping !== undefined) throw new BackendError('BACKEND_PROVISION_FAILED', 'instance ended before it was ready', meta)

      const address = host.config.address
      const instance: Instance = {
        grantId: grant.id,
        backend: this.name,
        host: address,
        port: host.config.port,
        user,
        hostKeyFingerprint: host.pinnedFingerprint,
        hostKey: host.pinnedLine,
        ...(isIPv4(address) ? { ipv4: address } : {}),
        ...(isIPv6(address) ? { ipv6: address } : {}),
        handle: `${host.config.name}/${user}`
      }
      run.instance = instance
      this.arm(run)
      this.log.info(`grant ${grant.id} ready as ${user}@${host.config.name} (${address}:${host.config.port}), valid to ${grant.validToUnixSecs}`)
      onProgress?.({ type: 'provision:ready', detail: instance })
      return instance
    } catch (err) {
      conn?.end()
      conn = undefined
      if (created) {
        try { await this.removeUser(host, user, token) } catch (cleanupErr) {
          this.log.error(`grant ${grant.id}: could not remove ${user} from ${host.config.name} after a failed provision (listGrantUsers will find it): ${(cleanupErr as Error).message}`)
        }
      }
      this.release(run)
      if (err instanceof BackendError) throw err
      throw new BackendError('BACKEND_PROVISION_FAILED', `provisioning failed: ${(err as Error).message}`, meta, { cause: err })
    } finally {
      conn?.end()
    }
  }

  async watchUntilExit (instance: Instance): Promise<void> {
    await this.running.get(instance.grantId)?.ended
  }

  /** Ends the grant: every process of its user killed, the user and its home deleted. Idempotent. */
  async terminate (instance: Instance): Promise<void> {
    const run = this.running.get(instance.grantId)
    if (run !== undefined) {
      await this.stop(run, 'terminated')
      return
    }
    // Not ours in memory (a restart, or already ended): act on the handle, which names host and user.
    const [hostName, user] = (instance.handle ?? '').split('/')
    if (hostName === undefined || user === undefined) throw new BackendError('BACKEND_UNKNOWN_INSTANCE', `instance handle ${String(instance.handle)} is not <host>/<user>`, { grantId: instance.grantId })
    await this.terminateGrantUser(hostName, user)
  }

  /** Removes one grant user by host name (orphans found by listGrantUsers). A user already gone is fine. */
  async terminateGrantUser (hostName: string, user: string): Promise<void> {
    const host = this.hosts.find((h) => h.config.name === hostName)
    if (host === undefined) throw new BackendError('BACKEND_UNKNOWN_INSTANCE', `no host named ${hostName}`, { host: hostName })
    if (!GRANT_USER.test(user)) throw new BackendError('BACKEND_UNKNOWN_INSTANCE', `${user} is not a grant user name`, { host: hostName })
    const run = [...this.running.values()].find((r) => r.host === host && r.user === user)
    if (run !== undefined) await this.stop(run, 'terminated')
    else await this.removeUser(host, user)
  }

  /** The grant users present on each host, from their GECOS markers; an unreachable host reports its error. */
  async listGrantUsers (): Promise<HostGrantUsers[]> {
    return await Promise.all(this.hosts.map(async (host): Promise<HostGrantUsers> => {
      try {
        const r = await this.withConnection(host, async (conn) => await this.exec(conn, host, LIST_USERS, {}))
        expectOk(r, 'listing users', { host: host.config.name })
        const users: GrantUser[] = []
        for (const line of r.stdout.split('\n')) {
          const [user = '', , uid = '', , gecos = ''] = line.split(':')
          if (!GRANT_USER.test(user)) continue
          const marker = parseGrantMarker(gecos)
          if (marker === undefined) continue
          const tracked = this.running.get(marker.grantId)
          users.push({ host: host.config.name, user, uid: Number(uid), ...marker, tracked: tracked !== undefined && tracked.host === host && tracked.user === user })
        }
        return { host: host.config.name, ok: true, users }
      } catch (err) {
        return { host: host.config.name, ok: false, ...describe(err) }
      }
    }))
  }

  /**
   * Connects (pinned host key, admin key) and runs `true` on every host. `ok` while at least one
   * host answers; `reason` names every host that did not.
   */
  async checkHealth (signal?: AbortSignal): Promise<BareMetalHealth> {
    const hosts = await Promise.all(this.hosts.map(async (host): Promise<HostHealth> => {
      const start = Date.now()
      try {
        const r = await this.withConnection(host, async (conn) => await this.exec(conn, host, 'true', { signal }), signal)
        expectOk(r, 'running true', { host: host.config.name })
        return { host: host.config.name, ok: true, latencyMs: Date.now() - start }
      } catch (err) {
        return { host: host.config.name, ok: false, ...describe(err) }
      }
    }))
    const failed = hosts.filter((h) => !h.ok).map((h) => `${h.host}: ${h.ok ? '' : `${h.code} ${h.error}`}`)
    return { ok: hosts.some((h) => h.ok), ...(failed.length > 0 ? { reason: failed.join('; ').slice(0, 1000) } : {}), hosts }
  }

  /** Clears this process's timers (node shutdown); the grant users stay, to be found by listGrantUsers. */
  close (): void {
    for (const run of this.running.values()) clearTimeout(run.timer)
  }

  // ---- internals ----

  private pickHost (grant: Grant): HostState | undefined {
    const fits = this.hosts.filter((h) => fitsStatically(h, grant) && fitsNow(h, grant))
    // A non-TDX grant prefers non-TDX hosts; then the host with the most CPUs free.
    fits.sort((a, b) => (grant.tdx ? 0 : Number(a.config.tdx) - Number(b.config.tdx)) || free(b).cpus - free(a).cpus)
    return fits[0]
  }

  private release (run: Running): void {
    if (!run.released) {
      run.released = true
      unreserve(run.host, run.need)
    }
    clearTimeout(run.timer)
    if (this.running.get(run.grantId) === run) this.running.delete(run.grantId)
    run.markEnded()
  }

  private arm (run: Running): void {
    clearTimeout(run.timer)
    const ms = run.validToUnixSecs * 1000 - this.now()
    run.timer = setTimeout(() => {
      if (ms > MAX_TIMER_MS) { this.arm(run); return }
      this.stop(run, 'valid-to reached').catch((err: unknown) => {
        this.log.error(`grant ${run.grantId}: ending at valid-to failed, retrying in ${RETRY_TERMINATE_MS / 1000} s: ${(err as Error).message}`)
        run.stopping = undefined
        run.timer = setTimeout(() => { this.arm(run) }, RETRY_TERMINATE_MS)
        run.timer.unref()
      })
    }, Math.max(0, Math.min(ms, MAX_TIMER_MS)))
    run.timer.unref()
  }

  /** Removes the user, then frees the capacity; on failure the grant stays tracked so terminate() can be retried. */
  private async stop (run: Running, why: string): Promise<void> {
    run.stopping ??= (async () => {
      clearTimeout(run.timer)
      try {
        await this.removeUser(run.host, run.user)
      } catch (err) {
        run.stopping = undefined
        throw err
      }
      this.release(run)
      this.log.info(`grant ${run.grantId} (${run.user}@${run.host.config.name}) ended: ${why}`)
    })()
    await run.stopping
  }

  private async removeUser (host: HostState, user: string, token?: string): Promise<void> {
    const meta = { host: host.config.name, user }
    const r = await this.withConnection(host, async (conn) => await this.exec(conn, host, adminCommand(host, REMOVE_USER, token === undefined ? [user] : [user, token]), {}))
    if (r.timedOut || r.code !== 0) throw codeError('BACKEND_TERMINATE_FAILED', `removing ${user} from ${host.config.name} failed (${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal ?? '?'}`}): ${tail(r.stderr)}`, meta)
  }

  private async withConnection<T> (host: HostState, fn: (conn: Client) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const conn = await this.connect(host, signal)
    try { return await fn(conn) } finally { conn.end() }
  }

  /** An admin session to `host`, refusing any host key but the pinned one. */
  private async connect (host: HostState, signal?: AbortSignal): Promise<Client> {
    const meta = { host: host.config.name, address: host.config.address, port: host.config.port }
    if (signal?.aborted === true) throw new BackendError('BACKEND_ABORTED', 'provisioning aborted', meta)
    const client = new ssh2.Client()
    let mismatch = false
    return await new Promise<Client>((resolve, reject) => {
      let settled = false
      const settle = (err?: Error): void => {
        if (settled) return
        settled = true
        signal?.removeEventListener('abort', onAbort)
        if (err === undefined) { resolve(client); return }
        client.end()
        reject(err)
      }
      const onAbort = (): void => { settle(new BackendError('BACKEND_ABORTED', 'provisioning aborted', meta)) }
      signal?.addEventListener('abort', onAbort, { once: true })
      client.on('error', (err: Error & { level?: string, code?: string }) => {
        if (settled) { this.log.debug(`ssh to ${host.config.name}: ${err.message}`); return }
        if (mismatch) settle(codeError('BACKEND_HOST_KEY_MISMATCH', `${host.config.name} (${host.config.address}:${host.config.port}) presented a host key other than the pinned ${host.pinnedFingerprint}`, meta, err))
        else if (err.level === 'client-authentication') settle(new BackendError('BACKEND_PROVISION_FAILED', `admin login as ${host.config.user} refused by ${host.config.name}`, meta, { cause: err }))
        else settle(codeError('BACKEND_UNREACHABLE', `cannot reach ${host.config.name} (${host.config.address}:${host.config.port}): ${err.message}`, { ...meta, errno: err.code }, err))
      })
      client.once('close', () => { settle(codeError('BACKEND_UNREACHABLE', `${host.config.name} closed the connection during the handshake`, meta)) })
      client.once('ready', () => { settle() })
      try {
        client.connect({
          host: host.config.address,
          port: host.config.port,
          username: host.config.user,
          privateKey: host.config.privateKey,
          hostVerifier: (key: Buffer) => {
            const ok = key.length === host.pinnedBlob.length && timingSafeEqual(key, host.pinnedBlob)
            if (!ok) mismatch = true
            return ok
          },
          algorithms: { serverHostKey: host.hostKeyAlgorithms as ssh2.ServerHostKeyAlgorithm[] },
          readyTimeout: this.connectTimeoutMs,
          keepaliveInterval: 10_000,
          keepaliveCountMax: 6,
          tryKeyboard: false
        })
      } catch (err) {
        settle(new BackendError('BACKEND_PROVISION_FAILED', `bad ssh settings for ${host.config.name}: ${(err as Error).message}`, meta, { cause: err }))
      }
    })
  }

  /** Runs one command; resolves with its status (timedOut after `timeoutMs`), rejects when the connection fails or on abort. */
  private async exec (conn: Client, host: HostState, command: string, { stdin, timeoutMs = this.commandTimeoutMs, signal }: { stdin?: string | Uint8Array, timeoutMs?: number, signal?: AbortSignal }): Promise<ExecResult> {
    const meta = { host: host.config.name }
    if (signal?.aborted === true) throw new BackendError('BACKEND_ABORTED', 'provisioning aborted', meta)
    return await new Promise<ExecResult>((resolve, reject) => {
      let stream: ClientChannel | undefined
      let settled = false
      let code: number | null | undefined
      let sig: string | undefined
      let stdout = ''
      let stderr = ''
      const cleanup = (): void => {
        settled = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        conn.removeListener('close', onClose)
      }
      const fail = (err: Error): void => {
        if (settled) return
        cleanup()
        stream?.close()
        reject(err)
      }
      const onAbort = (): void => { fail(new BackendError('BACKEND_ABORTED', 'provisioning aborted', meta)) }
      const onClose = (): void => { fail(codeError('BACKEND_UNREACHABLE', `connection to ${host.config.name} lost`, meta)) }
      const timer = setTimeout(() => {
        if (settled) return
        cleanup()
        stream?.close()
        resolve({ code: null, stdout, stderr, timedOut: true })
      }, timeoutMs)
      signal?.addEventListener('abort', onAbort, { once: true })
      conn.once('close', onClose)
      const append = (acc: string, d: Buffer): string => acc.length >= MAX_OUTPUT_BYTES ? acc : acc + d.toString('utf8').slice(0, MAX_OUTPUT_BYTES - acc.length)
      conn.exec(command, (err, ch) => {
        if (err !== undefined && err !== null) { fail(codeError('BACKEND_UNREACHABLE', `${host.config.name} refused a session: ${err.message}`, meta, err)); return }
        stream = ch
        if (settled) { ch.close(); return }
        ch.on('exit', (c: number | null, s?: string) => { code = c; sig = s ?? undefined })
        ch.on('data', (d: Buffer) => { stdout = append(stdout, d) })
        ch.stderr.on('data', (d: Buffer) => { stderr = append(stderr, d) })
        ch.on('error', (e: Error) => { fail(codeError('BACKEND_UNREACHABLE', `session on ${host.config.name} failed: ${e.message}`, meta, e)) })
        ch.once('close', () => {
          if (settled) return
          if (code === undefined) { fail(codeError('BACKEND_UNREACHABLE', `session on ${host.config.name} closed without an exit status`, meta)); return }
          cleanup()
          resolve({ code, signal: sig, stdout, stderr, timedOut: false })
        })
        if (stdin === undefined || stdin.length === 0) ch.end()
        else ch.end(Buffer.from(stdin))
      })
    })
  }
}

function hostState (h: BareMetalHost): HostState {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(h.name)) throw new TypeError(`bare-metal host name "${h.name}" must be [A-Za-z0-9._-]{1,64}`)
  if (typeof h.address !== 'string' || h.address.length === 0) throw new TypeError(`bare-metal host ${h.name}: address missing`)
  if (!Number.isInteger(h.port) || h.port < 1 || h.port > 65535) throw new TypeError(`bare-metal host ${h.name}: bad port ${h.port}`)
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(h.user)) throw new TypeError(`bare-metal host ${h.name}: bad admin user "${h.user}"`)
  for (const k of ['maxCpu', 'maxMemoryMiB', 'maxDiskGiB'] as const) {
    if (!(Number.isFinite(h[k]) && h[k] >= 0)) throw new TypeError(`bare-metal host ${h.name}: bad ${k}`)
  }
  if (!Array.isArray(h.regions) || !h.regions.every((r) => typeof r === 'string')) throw new TypeError(`bare-metal host ${h.name}: regions must be a list of strings`)
  if ((h.privateKey === undefined) === (h.privateKeyFile === undefined)) throw new TypeError(`bare-metal host ${h.name}: give exactly one of privateKey and privateKeyFile`)
  const privateKey = h.privateKey ?? readFileSync(h.privateKeyFile as string, 'utf8')
  const admin = ssh2.utils.parseKey(privateKey)
  if (admin instanceof Error || Array.isArray(admin) || admin.isPrivateKey() !== true) throw new BackendError('BACKEND_BAD_KEY', `bare-metal host ${h.name}: the admin key is not an unencrypted OpenSSH private key`)
  if (typeof h.hostKey !== 'string') throw new BackendError('BACKEND_BAD_KEY', `bare-metal host ${h.name}: hostKey missing`)
  const pinned = parsePublicKey(h.hostKey.trim().split(/\s+/).slice(0, 2).join(' '))
  const blob = pinned.getPublicSSH()
  const algorithms = pinned.type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [pinned.type]
  return {
    config: { ...h, privateKey, regions: [...h.regions], tdx: h.tdx === true },
    pinnedBlob: blob,
    pinnedLine: `${pinned.type} ${blob.toString('base64')}`,
    pinnedFingerprint: hostKeyFingerprint(blob),
    hostKeyAlgorithms: algorithms,
    used: { cpus: 0, memMiB: 0, diskGiB: 0 }
  }
}

function fitsStatically (h: HostState, g: Grant): boolean {
  const c = h.config
  return c.regions.includes(g.region) && (!g.tdx || c.tdx) && g.cpus <= c.maxCpu && g.memMiB <= c.maxMemoryMiB && g.diskGiB <= c.maxDiskGiB
}

function free (h: HostState): { cpus: number, memMiB: number, diskGiB: number } {
  return { cpus: h.config.maxCpu - h.used.cpus, memMiB: h.config.maxMemoryMiB - h.used.memMiB, diskGiB: h.config.maxDiskGiB - h.used.diskGiB }
}

function fitsNow (h: HostState, g: Grant): boolean {
  const f = free(h)
  return g.cpus <= f.cpus && g.memMiB <= f.memMiB && g.diskGiB <= f.diskGiB
}

function reserve (h: HostState, n: Running['need']): void {
  h.used = { cpus: h.used.cpus + n.cpus, memMiB: h.used.memMiB + n.memMiB, diskGiB: h.used.diskGiB + n.diskGiB }
}

function unreserve (h: HostState, n: Running['need']): void {
  h.used = { cpus: h.used.cpus - n.cpus, memMiB: h.used.memMiB - n.memMiB, diskGiB: h.used.diskGiB - n.diskGiB }
}

/** `/bin/sh -c '<script>' cmesh '<arg>'…`, through `sudo -n` unless the admin is root. */
function adminCommand (host: HostState, script: string, args: string[]): string {
  const cmd = ['/bin/sh', '-c', script, 'cmesh', ...args].map(shq).join(' ')
  return host.config.user === 'root' ? cmd : `sudo -n -- ${cmd}`
}

function expectOk (r: ExecResult, what: string, meta: Record<string, unknown>): void {
  if (r.timedOut) throw new BackendError('BACKEND_PROVISION_FAILED', `${what}: timed out`, meta)
  if (r.code !== 0) {
    throw new BackendError('BACKEND_PROVISION_FAILED', `${what} failed (exit ${r.code ?? r.signal ?? '?'}): ${tail(r.stderr)}`, { ...meta, exitCode: r.code })
  }
}

function tail (stderr: string): string {
  return stderr.trim().split('\n').slice(-3).join('; ').slice(0, 500)
}

/** A BackendError carrying one of the codes `BackendErrorCode` does not list yet. */
function codeError (code: BareMetalErrorCode, message: string, meta: Record<string, unknown>, cause?: unknown): BackendError {
  return new BackendError(code as BackendErrorCode, message, meta, cause === undefined ? undefined : { cause })
}

function describe (err: unknown): { code: string, error: string } {
  if (err instanceof BackendError) return { code: err.code, error: err.message }
  return { code: 'BACKEND_PROVISION_FAILED', error: (err as Error).message }
}
