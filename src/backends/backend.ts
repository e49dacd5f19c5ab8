/**
 * What a backend is (DESIGN.md §7, Mosaik's trait kept): it says what it can host, decides whether a
 * grant fits, provisions a machine reachable over SSH with the grant's per-grant key, and ends it at
 * valid-to or on demand. The fleet picks among backends; a backend never picks among grants.
 */
import { CmeshError } from '../market/errors.js'

export interface BackendCapabilities {
  regions: string[]
  maxCpu: number
  maxMemoryMiB: number
  maxDiskGiB: number
  tdx: boolean
}

/** One accepted contract's machine, as a backend sees it. */
export interface Grant {
  id: string
  cpus: number
  memMiB: number
  diskGiB: number
  region: string
  tdx: boolean
  /** Already opened (unsealed) by the provider; run once as a shell script before the instance is ready. */
  userData: Uint8Array
  validToUnixSecs: number
  /** OpenSSH public key line (`ssh-ed25519 AAAA… comment`) of the per-grant key; the only key that may log in. */
  authorizedKey: string
  /** Files placed on the machine before user_data runs (the workload identity credential and issuer URL). */
  files?: GrantFile[]
}

export interface GrantFile {
  /** Relative to the grant user's home (workspace): plain characters, no leading `/`, no `..` (grant-files.ts isPlainGrantPath). */
  path: string
  content: Uint8Array
  mode: number
}

export interface Instance {
  grantId: string
  /** `Backend.name` of the backend that owns it. */
  backend: string
  host: string
  port: number
  user: string
  /** `SHA256:<base64 without padding>` of the host key, as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint: string
  /** The host key itself, `<type> <base64>` (a known_hosts entry without the host), so the requester can pin it. */
  hostKey: string
  ipv4?: string
  ipv6?: string
  /** Backend-specific id (a cloud instance id, a local workspace path). */
  handle?: string
}

/** Progress events, shaped like Helia's `CustomProgressEvent`: a `type` to switch on and an optional `detail`. */
export type ProvisionProgress =
  | { type: 'provision:starting', detail?: { grantId: string } }
  | { type: 'provision:booting', detail?: { host?: string, port?: number } }
  | { type: 'provision:user-data', detail?: { bytes: number } }
  | { type: 'provision:ready', detail?: Instance }

export interface ProvisionOptions {
  onProgress?: (event: ProvisionProgress) => void
  signal?: AbortSignal
}

export type CanSatisfy = { ok: true } | { ok: false, reason: string }

export interface Backend {
  readonly name: string
  readonly kind: string
  /** Whether it puts `Grant.files` on the machine (where user_data runs with /bin/sh). A backend that cannot leaves it out. */
  readonly placesGrantFiles?: boolean
  capabilities: () => BackendCapabilities
  canSatisfy: (grant: Grant) => CanSatisfy
  provision: (grant: Grant, options: ProvisionOptions) => Promise<Instance>
  /** Resolves once the instance has ended (terminated, or its valid-to passed). */
  watchUntilExit?: (instance: Instance, validToUnixSecs: number) => Promise<void>
  /** Ends the instance now; idempotent. */
  terminate: (instance: Instance) => Promise<void>
  /**
   * What the instance has used so far, for heartbeats and the final termination record. Optional:
   * a backend that cannot measure leaves it out (or a field of it). Throws BackendError
   * `BACKEND_UNKNOWN_INSTANCE` when the instance is gone.
   */
  usage?: (instance: Instance) => Promise<BackendUsage>
}

/** Usage as a backend measures it: CPU time in ms, memory allocated in MiB. */
export interface BackendUsage {
  cpuMillis?: number
  memMiB?: number
}

export type BackendErrorCode =
  | 'BACKEND_CANNOT_SATISFY'
  | 'BACKEND_PROVISION_FAILED'
  | 'BACKEND_ABORTED'
  | 'BACKEND_USER_DATA_FAILED'
  | 'BACKEND_USER_DATA_TIMEOUT'
  | 'BACKEND_UNKNOWN_INSTANCE'
  | 'BACKEND_BAD_KEY'
  | 'BACKEND_TIMEOUT'
  | 'BACKEND_UNREACHABLE'
  | 'BACKEND_HOST_KEY_UNKNOWN'
  | 'BACKEND_HOST_KEY_MISMATCH'
  | 'BACKEND_TERMINATE_FAILED'
  | 'BACKEND_INVALID_GRANT'

export class BackendError extends CmeshError<BackendErrorCode> {}

/** The checks every backend makes against its capabilities; backends add their own after. */
export function checkCapabilities (caps: BackendCapabilities, grant: Grant, nowUnixSecs: number): CanSatisfy {
  if (grant.tdx && !caps.tdx) return { ok: false, reason: 'TDX required; this backend has none' }
  if (!caps.regions.includes(grant.region)) return { ok: false, reason: `region ${grant.region} not offered` }
  if (!(grant.cpus >= 1 && grant.cpus <= caps.maxCpu)) return { ok: false, reason: `${grant.cpus} CPUs; at most ${caps.maxCpu}` }
  if (!(grant.memMiB >= 1 && grant.memMiB <= caps.maxMemoryMiB)) return { ok: false, reason: `${grant.memMiB} MiB memory; at most ${caps.maxMemoryMiB}` }
  if (!(grant.diskGiB >= 0 && grant.diskGiB <= caps.maxDiskGiB)) return { ok: false, reason: `${grant.diskGiB} GiB disk; at most ${caps.maxDiskGiB}` }
  if (!(grant.validToUnixSecs > nowUnixSecs)) return { ok: false, reason: 'grant already expired' }
  return { ok: true }
}

/** What a backend logs through: the node hands down its own per-component logger (src/node/logger.ts). */
export interface BackendLogger {
  error: (msg: string) => void
  warn: (msg: string) => void
  info: (msg: string) => void
  debug: (msg: string) => void
}

/**
 * A backend built without the node's logger (a test, a script) still says what matters: warnings
 * and errors go to stderr, the rest is dropped. Backends sit below the node and never import it.
 */
export function defaultBackendLogger (component: string): BackendLogger {
  const emit = (level: string) => (msg: string): void => { process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${component}: ${msg}\n`) }
  return { error: emit('error'), warn: emit('warn'), info: () => {}, debug: () => {} }
}
