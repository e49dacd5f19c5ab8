/**
 * Node configuration: a JSON file, overridden by flags, over embedded defaults. With nothing
 * given, a node runs as provider + requester on 127.0.0.1 with the embedded local backend, data in
 * `./.cmesh`. This is the only module that decides defaults; the rest receive a resolved config.
 */
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { NodeError } from './errors.js'
import { multiaddrProblem } from './multiaddr-text.js'
import { cardDraftSchema, type CardDraft } from './card-draft.js'
import { NETWORK_PATTERN } from '../protocols/names.js'
import { ATTESTATION_LEVELS } from '../market/ladder.js'
import { weiString } from '../market/schema.js'

export const ROLES = ['provider', 'requester', 'auditor'] as const
export type Role = typeof ROLES[number]

/** The card a node with no card of its own configured offers: the embedded local backend. */
export const DEFAULT_CARD_DRAFT: CardDraft = {
  schemesSupported: ['vm.ssh'],
  attestationLevel: 'Software',
  capacityPerSecond: 1,
  feePerPartialWei: '1000000000',
  backends: [{ name: 'local', kind: 'local', regions: ['local'], maxCpu: 2, maxMemoryMiB: 2048, maxDiskGiB: 10, tdx: false }],
  rates: [{ backend: 'local', cpuHourWei: '1000000000000', memoryGiBHourWei: '100000000000', diskGiBHourWei: '1000000000' }]
}

const DAY_SECS = 86_400
/** Card draft fields a running node fills in itself (times, addresses, its own evidence). */
const NODE_SET_CARD_FIELDS = ['committedAtUnixSecs', 'expiresAtUnixSecs', 'ttlSecs', 'listenAddrs', 'evidence', 'payment'] as const

function addr (options: { peer?: boolean } = {}) {
  return z.string().superRefine((text, ctx) => {
    const problem = multiaddrProblem(text, options)
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `${text}: ${problem}` })
  })
}

const configSchema = z.strictObject({
  network: z.string().regex(NETWORK_PATTERN).default('devnet'),
  dataDir: z.string().min(1).default('.cmesh'),
  listen: z.array(addr()).min(1).default(['/ip4/127.0.0.1/tcp/0']),
  announce: z.array(addr()).default([]),
  // A bootstrap peer without its peer id cannot be authenticated: refused, not silently dropped.
  bootstrap: z.array(addr({ peer: true })).default([]),
  apiHost: z.enum(['127.0.0.1', '::1', 'localhost']).default('127.0.0.1'),
  apiPort: z.number().int().min(0).max(65535).default(0),
  roles: z.array(z.enum(ROLES)).default(['provider', 'requester']),
  /** The provider's card draft (see card-draft.ts); the embedded local one when absent. */
  card: z.record(z.string(), z.unknown()).superRefine((draft, ctx) => {
    // Checked whole at start, so a bad draft fails before anything opens (kept as written: the node completes it).
    const parsed = cardDraftSchema.safeParse(draft)
    if (!parsed.success) for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message })
    // The node sets these itself at every publish; a fixed expiry in the config would fail every refresh after it.
    for (const key of NODE_SET_CARD_FIELDS) if (key in draft) ctx.addIssue({ code: 'custom', path: [key], message: `set by the node at each publish (use cardTtlSecs for the lifetime)` })
  }).optional(),
  cardTtlSecs: z.number().int().min(60).max(7 * 86400).default(7200),
  // Intervals are bounded above too: a timer past 2^31 ms overflows to 1 ms and spins.
  cardRefreshSecs: z.number().int().min(10).max(DAY_SECS).default(1800),
  // A converged pair exchanges two 8 KiB summaries and stops: cheap enough to run often.
  syncIntervalSecs: z.number().int().min(1).max(DAY_SECS).default(10),
  /** Worker threads verifying synced records; absent: min(2, cores − 1); 0: verify on the main thread. */
  syncVerifyWorkers: z.number().int().min(0).max(16).optional(),
  /** Sync want batches asked for and not yet applied (1: one at a time, as before pipelining). */
  syncPipelineDepth: z.number().int().min(1).max(5).default(4),
  redialIntervalSecs: z.number().int().min(1).max(DAY_SECS).default(5),
  gossipHeartbeatMs: z.number().int().min(50).max(10_000).default(1000),
  /** Gossipsub IP-colocation penalty exemptions: loopback by default (every test node shares it). */
  ipColocationWhitelist: z.array(z.string()).default(['127.0.0.1', '::1']),
  dht: z.boolean().default(true),
  /**
   * Backends beyond the card's embedded local one (src/backends/): each with its rates (wei per
   * hour, decimal strings) and the options its constructor takes. Credentials are not config: each
   * cloud SDK reads them where it normally does (env, files, metadata).
   */
  backends: z.array(z.strictObject({
    kind: z.enum(['bare-metal', 'aws-ec2', 'gcp', 'azure']),
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/),
    rates: z.array(z.strictObject({ region: z.string().optional(), cpuHourWei: weiString, memoryGiBHourWei: weiString, diskGiBHourWei: weiString })).min(1),
    options: z.record(z.string(), z.unknown()).default({})
  })).default([]),
  /** The requester's contract policy (src/market/contract-policy.ts): whom it accepts bids from. */
  contracts: z.strictObject({
    mode: z.enum(['open', 'only-me', 'vouched', 'mutuals']).default('open'),
    depth: z.number().int().min(1).max(6).default(2),
    /** How many eligible providers an RFP is sent to (the cheapest by verified level and fee). */
    maxProviders: z.number().int().min(1).max(100).default(20)
  }).default({ mode: 'open', depth: 2, maxProviders: 20 }),
  /**
   * Payments (x402 on an EVM chain with an EIP-3009 token). Absent: this node neither asks for
   * payment nor pays, and bids in plain `wei` with no settlement. Nothing defaults to a public chain.
   */
  payment: z.strictObject({
    chainId: z.number().int().min(1).max(2 ** 53 - 1),
    rpcUrl: z.string().url().refine((u) => /^https?:\/\//.test(u), { message: 'an http(s) JSON-RPC URL' }),
    /** The EIP-3009 token bids are priced and settled in (atomic units). */
    asset: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
    /** The token's EIP-712 domain name and version (what `name()` and `version()` return). */
    assetName: z.string().min(1).max(64),
    assetVersion: z.string().min(1).max(16).default('1'),
    /** Provider: how long an accepted bid waits for its payment to settle, and the grace after each later payment falls due. */
    windowSecs: z.number().int().min(10).max(3600).default(120),
    /** Provider: bid `one-time` (the whole contract) or `per-period` (a price per `periodSecs`). */
    frequency: z.enum(['one-time', 'per-period']).default('one-time'),
    periodSecs: z.number().int().min(10).max(86_400).default(3600),
    /** Provider: each payment due at the start of what it pays for (the first before provisioning), or at its end. */
    prepay: z.boolean().default(true),
    /** Requester: the most it pays in one payment, atomic units (the bid's cost is checked against the RFP's cap too). */
    maxPerPayment: weiString.optional()
  }).optional(),
  /**
   * The node's public HTTP server: the x402 payment endpoint and the workload identity issuer live
   * here (the local API stays on loopback, token-guarded). `publicUrl` is what bids and workloads
   * are told; by default the listening address.
   */
  /** The provider's workload identity issuer (services/wif-issuer.ts), on the public HTTP server. */
  wif: z.strictObject({
    enabled: z.boolean().default(true),
    /** How long an exchanged workload token lives (never past its contract's valid-to). */
    tokenTtlSecs: z.number().int().min(30).max(3600).default(300),
    rotateSecs: z.number().int().min(60).max(30 * 86400).default(86400)
  }).default({ enabled: true, tokenTtlSecs: 300, rotateSecs: 86400 }),
  http: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(0),
    publicUrl: z.string().url().optional()
  }).default({ host: '127.0.0.1', port: 0 }),
  attest: z.strictObject({
    /** Where this node's quotes come from: TDX hardware, the TEST-ONLY simulator, or nowhere (Software only). */
    provider: z.enum(['simulated', 'configfs-tsm', 'none']).default('simulated'),
    /** What this node requires of every peer it bonds with. */
    require: z.enum(ATTESTATION_LEVELS).default('Software'),
    /** Refuse to start with any trust root but Intel's, or with the simulator. */
    production: z.boolean().default(false),
    /** PEM of the root peers' quotes must chain to (default: Intel's; the devnet test root with the simulator). */
    rootPem: z.string().optional(),
    /** Collateral JSON for this TD's own quotes (configfs-tsm; the operator fetches it from a PCCS). */
    collateralFile: z.string().optional(),
    allowSwHardeningNeeded: z.boolean().default(false)
  }).default({ provider: 'simulated', require: 'Software', production: false, allowSwHardeningNeeded: false }),
  /** A contract after its receipt (contract-lifecycle / contract-watch services). */
  lifecycle: z.strictObject({
    /** Provider: how often it sends each live contract's requester a signed heartbeat (a bid's `heartbeatSecs`, when it names one, wins). */
    heartbeatSecs: z.number().int().min(1).max(3600).default(30),
    /** Requester: a ready contract whose heartbeats stop for this many periods is `unresponsive`. */
    unresponsiveAfterPeriods: z.number().int().min(2).max(100).default(3)
  }).default({ heartbeatSecs: 30, unresponsiveAfterPeriods: 3 })
})

export type NodeConfig = z.output<typeof configSchema> & { card?: CardDraft }
export type NodeConfigInput = z.input<typeof configSchema>

export function resolveConfig (input: unknown): NodeConfig {
  const parsed = configSchema.safeParse(input ?? {})
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new NodeError('CONFIG_INVALID', `config: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`)
  }
  return parsed.data as NodeConfig
}

export async function readConfigFile (path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'))
  } catch (err: any) {
    throw new NodeError('CONFIG_INVALID', `cannot read config ${path}: ${err.code ?? err.message}`)
  }
}
