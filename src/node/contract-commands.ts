/**
 * `cmesh rfp …`, `cmesh contracts`, `cmesh receipt open`, `cmesh trust …`: the contract flow from
 * the command line, through the running node's local API. The node runs the flow; these commands
 * start it, show it, and open the sealed receipt here (the SSH key is written 0600, never printed).
 */
import { receiptKeyFile, receiptKnownHosts, receiptSshCommand } from './receipt-login.js'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { Option, InvalidArgumentError, type Command } from 'commander'
import { ATTESTATION_LEVELS } from '../market/ladder.js'
import { fromHex } from '../market/bytes.js'
import { parseSize } from '../market/sizes.js'
import { openReceipt } from '../market/sealed-receipt.js'
import { cidForBytes } from '../market/cbor.js'
import { apiRequest } from './api-client.js'
import { writeFileAtomic } from './atomic-file.js'
import { NodeError } from './errors.js'
import type { CliRun } from './cli-io.js'
import { addWifCommands } from './wif-commands.js'

const DEFAULT_DATA_DIR = '.cmesh'
const FINAL_STATES = new Set(['ready', 'failed', 'no-bids'])

function size (value: string): string {
  try {
    parseSize(value)
  } catch {
    throw new InvalidArgumentError('expected a size such as 512M, 4G or 1T')
  }
  return value
}

function positive (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer')
  return n
}

function weiArg (value: string): string {
  if (!/^(0|[1-9][0-9]{0,77})$/.test(value)) throw new InvalidArgumentError('expected a whole number of wei')
  return value
}

async function api<T> (dataDir: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  return await (await apiRequest(dataDir, method, path, body)).json() as T
}

interface RfpStatus {
  id: string
  state: string
  bids: Array<{ provider: string, costWei: string, currency?: string, frequency?: string, periodSecs?: number, verified: string, simulated: boolean, backend: string, region: string }>
  declines: Array<{ provider: string, code: string, detail: string }>
  refused: Array<{ provider: string, code: string, detail: string }>
  chosen?: { provider: string, costWei: string, currency?: string }
  payment?: { txid: string, amount: string, network: string }
  progress: string[]
  error?: { code: string, detail: string }
}

/** An amount in its bid's unit: wei (unsettled), or atomic units of a token (a CAIP-19 asset id). */
function price (amount: string, currency: string | undefined): string {
  return currency === undefined || currency === 'wei' ? `${amount} wei` : `${amount} (atomic units of ${currency})`
}

function printStatus (run: CliRun, s: RfpStatus): void {
  const lines = [`rfp ${s.id}: ${s.state}`]
  for (const b of s.bids) lines.push(`  bid     ${b.provider}  ${price(b.costWei, b.currency)}${b.frequency === 'per-period' ? ` per ${b.periodSecs ?? '?'} s` : ''}  verified ${b.verified}${b.simulated ? ' (SIMULATED)' : ''}  ${b.backend}/${b.region}`)
  for (const d of s.declines) lines.push(`  decline ${d.provider}  ${d.code}: ${d.detail}`)
  for (const r of s.refused) lines.push(`  refused ${r.provider}  ${r.code}: ${r.detail}`)
  if (s.chosen !== undefined) lines.push(`  chosen  ${s.chosen.provider}  ${price(s.chosen.costWei, s.chosen.currency)}`)
  if (s.payment !== undefined) lines.push(`  paid    ${s.payment.amount} on ${s.payment.network}, tx ${s.payment.txid}`)
  if (s.progress.length > 0) lines.push(`  progress ${s.progress.join(' → ')}`)
  if (s.error !== undefined) lines.push(`  error   ${s.error.code}: ${s.error.detail}`)
  run.io.out(lines.join('\n') + '\n')
}

interface ContractView {
  id: string
  role: string
  state: string
  counterparty?: string
  validToUnixSecs?: number
  error?: { code: string, detail: string }
  heartbeat?: { seq: number, atUnixSecs: number, periodSecs: number, usage: { uptimeSecs: number, cpuMillis?: number, memMiB?: number } }
  termination?: { reason: string, by: string, atUnixSecs: number, detail: string, usage?: { uptimeSecs: number, cpuMillis?: number, memMiB?: number } }
}

function printContract (run: CliRun, c: ContractView): void {
  const at = (secs: number): string => new Date(secs * 1000).toISOString()
  const usage = (u: { uptimeSecs: number, cpuMillis?: number, memMiB?: number }): string =>
    `up ${u.uptimeSecs} s${u.cpuMillis !== undefined ? `, cpu ${(u.cpuMillis / 1000).toFixed(3)} s` : ''}${u.memMiB !== undefined ? `, ${u.memMiB} MiB` : ''}`
  const lines = [`contract ${c.id} (${c.role}): ${c.state}`]
  if (c.counterparty !== undefined) lines.push(`  with        ${c.counterparty}`)
  if (c.validToUnixSecs !== undefined) lines.push(`  valid to    ${at(c.validToUnixSecs)}`)
  if (c.heartbeat !== undefined) lines.push(`  heartbeat   #${c.heartbeat.seq} at ${at(c.heartbeat.atUnixSecs)} (every ${c.heartbeat.periodSecs} s): ${usage(c.heartbeat.usage)}`)
  if (c.termination !== undefined) lines.push(`  ended       ${c.termination.reason} at ${at(c.termination.atUnixSecs)}, signed by ${c.termination.by}: ${c.termination.detail}${c.termination.usage !== undefined ? ` (${usage(c.termination.usage)})` : ''}`)
  else if (c.error !== undefined) lines.push(`  error       ${c.error.code}: ${c.error.detail}`)
  run.io.out(lines.join('\n') + '\n')
}

export function addContractCommands (program: Command, run: CliRun): void {
  const rfp = program.command('rfp').description('requests for proposals: ask the market for a machine')
  rfp.command('create')
    .description('publish a CCRFP, collect attested bids, apply your policy, accept one and receive its sealed receipt')
    .option('--data <dir>', 'data directory of the running node', DEFAULT_DATA_DIR)
    .requiredOption('--cpus <n>', 'vCPUs', positive)
    .requiredOption('--mem <size>', 'memory, e.g. 4G', size)
    .requiredOption('--disk <size>', 'disk, e.g. 10G', size)
    .option('--network <size>', 'network quota, e.g. 100G', size, '10G')
    .option('--region <region>', 'region wanted')
    .option('--country <country>', 'country wanted')
    .option('--role <role>', 'role the machine runs under', 'default')
    .option('--user-data <file>', 'script the machine runs first (sent sealed, only to the accepted provider)')
    .addOption(new Option('--floor <level>', 'verified attestation floor').choices(ATTESTATION_LEVELS).default('Software'))
    .option('--max-price <wei>', 'price cap for the whole contract, in wei', weiArg, '1000000000000000000')
    .option('--window <secs>', 'bid window', positive, 5)
    .option('--duration <secs>', 'contract duration', positive, 3600)
    .option('--wif-audience <aud>', 'audience of the workload identity tokens your machine gets (default: your DID)')
    .option('--wait', 'follow the RFP until it ends (receipt ready, failed, or no bids)')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const userData = opts.userData !== undefined ? await readFile(resolve(opts.userData)).catch((err) => { throw new NodeError('INPUT_INVALID', `cannot read ${opts.userData as string}: ${err.code as string}`) }) : Buffer.alloc(0)
      const created = await api<{ id: string, uri: string }>(opts.data, 'POST', '/v1/rfps', {
        cpus: opts.cpus,
        mem: opts.mem,
        disk: opts.disk,
        network: opts.network,
        ...(opts.region !== undefined || opts.country !== undefined ? { location: { ...(opts.country !== undefined ? { country: opts.country } : {}), ...(opts.region !== undefined ? { region: opts.region } : {}) } } : {}),
        role: opts.role,
        userDataBase64: userData.toString('base64'),
        floor: opts.floor,
        maxPriceWei: opts.maxPrice,
        windowSecs: opts.window,
        durationSecs: opts.duration,
        ...(opts.wifAudience !== undefined ? { wifAudience: opts.wifAudience } : {})
      })
      if (opts.wait !== true) {
        if (opts.json === true) run.json(created)
        else run.io.out(`rfp ${created.id} published (${created.uri}); follow it with: cmesh rfp status ${created.id}\n`)
        return
      }
      let status: RfpStatus
      for (;;) {
        status = await api<RfpStatus>(opts.data, 'GET', `/v1/rfps/${created.id}`)
        if (FINAL_STATES.has(status.state)) break
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
      if (opts.json === true) run.json(status)
      else printStatus(run, status)
      if (status.state !== 'ready') run.exitCode = 1
    })

  rfp.command('status <id>')
    .description('bids, declines with their reasons, the policy\'s refusals, the chosen bid and provisioning progress')
    .option('--data <dir>', 'data directory of the running node', DEFAULT_DATA_DIR)
    .option('--json', 'print JSON')
    .action(async (id: string, opts) => {
      const status = await api<RfpStatus>(opts.data, 'GET', `/v1/rfps/${encodeURIComponent(id)}`)
      if (opts.json === true) run.json(status)
      else printStatus(run, status)
    })

  const contracts = program.command('contracts')
    .description('this node\'s contracts, as requester and as provider')
    .option('--data <dir>', 'data directory of the running node', DEFAULT_DATA_DIR)
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const list = await api<Array<Record<string, unknown>>>(opts.data, 'GET', '/v1/contracts')
      if (opts.json === true) return run.json(list)
      run.io.out(`${list.length} ${list.length === 1 ? 'contract' : 'contracts'}\n`)
      for (const c of list) run.io.out(`${String(c.id)}  ${String(c.role)}  ${String(c.state)}  ${String(c.counterparty ?? '')}  ${c.costWei !== undefined ? price(String(c.costWei), c.currency as string | undefined) : ''}\n`)
    })

  // `--data` and `--json` are the parent's (commander gives a parent's options to it wherever they stand).
  contracts.command('show <id>')
    .description('one contract (either role): state, last heartbeat with usage, termination')
    .action(async (id: string, _opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals()
      const view = await api<ContractView>(opts.data, 'GET', `/v1/contracts/${encodeURIComponent(id)}`)
      if (opts.json === true) return run.json(view)
      printContract(run, view)
    })

  contracts.command('terminate <id>')
    .description('end a contract you bought now (the RFP id): the provider ends the machine and answers with its signed termination record')
    .option('--detail <text>', 'why, for the provider (at most 256 characters)')
    .action(async (id: string, _opts, cmd: Command) => {
      const opts = cmd.optsWithGlobals()
      const view = await api<ContractView>(opts.data, 'POST', `/v1/contracts/${encodeURIComponent(id)}/terminate`, { ...(opts.detail !== undefined ? { detail: opts.detail } : {}) })
      if (opts.json === true) return run.json(view)
      printContract(run, view)
    })

  program.command('receipt').description('sealed SSH receipts').command('open <id>')
    .description('open the sealed receipt of a contract (the RFP id), write its SSH key 0600 and a pinned known_hosts, print the ssh command')
    .option('--data <dir>', 'data directory of the running node', DEFAULT_DATA_DIR)
    .option('--key-out <file>', 'where to write the SSH private key (default <data>/receipts/<id>.key)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts) => {
      const got = await api<{ ccr: string, enc: string, ct: string, receiptKey: string }>(opts.data, 'GET', `/v1/contracts/${encodeURIComponent(id)}/receipt`)
      const ccr = fromHex(got.ccr)
      const receipt = await openReceipt({ enc: fromHex(got.enc), ct: fromHex(got.ct) }, fromHex(got.receiptKey), cidForBytes(ccr).bytes)
      const keyFile = resolve(opts.keyOut ?? receiptKeyFile(opts.data, id))
      const knownHosts = receiptKnownHosts(keyFile)
      await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 })
      await writeFileAtomic(keyFile, new TextEncoder().encode(receipt.privateKey), 0o600)
      // OpenSSH looks up port 22 under the bare host name, any other port as [host]:port.
      const hostPattern = receipt.port === 22 ? receipt.host : `[${receipt.host}]:${receipt.port}`
      await writeFileAtomic(knownHosts, new TextEncoder().encode(`${hostPattern} ${receipt.hostKey}\n`), 0o600)
      const ssh = receiptSshCommand(receipt, keyFile)
      const out = { host: receipt.host, port: receipt.port, user: receipt.user, hostKeyFingerprint: receipt.hostKeyFingerprint, grantId: receipt.grantId, validToUnixSecs: receipt.validToUnixSecs, keyFile, knownHosts, ssh }
      if (opts.json === true) return run.json(out)
      run.io.out([
        `host ${receipt.host}  port ${receipt.port}  user ${receipt.user}`,
        `host key ${receipt.hostKeyFingerprint} (pinned in ${knownHosts})`,
        `valid to ${new Date(receipt.validToUnixSecs * 1000).toISOString()}`,
        `key written to ${keyFile} (mode 0600)`,
        ssh.join(' '),
        ''
      ].join('\n'))
    })

  program.command('backends')
    .description('the provider\'s backends: kind, health, what each can host and what is in use')
    .option('--data <dir>', 'data directory of the running node', DEFAULT_DATA_DIR)
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const list = await api<Array<{ name: string, kind: string, ok: boolean, reason?: string, capabilities?: { regions: string[], maxCpu: number, maxMemoryMiB: number, maxDiskGiB: number, tdx: boolean }, used?: { cpus: number, memMiB: number, diskGiB: number, instances: number } }>>(opts.data, 'GET', '/v1/backends')
      if (opts.json === true) return run.json(list)
      for (const b of list) {
        const c = b.capabilities
        run.io.out(`${b.name.padEnd(12)} ${b.kind.padEnd(10)} ${b.ok ? 'ok' : `LEFT OUT: ${b.reason ?? ''}`}` +
          (c !== undefined ? `  regions ${c.regions.join(',')}  up to ${c.maxCpu} cpu / ${c.maxMemoryMiB} MiB / ${c.maxDiskGiB} GiB${c.tdx ? '  TDX' : ''}  in use ${b.used?.instances ?? 0} instances, ${b.used?.cpus ?? 0} cpu` : '') + '\n')
      }
    })

  const trust = program.command('trust').description('vouch for or denounce providers (your policy engine reads these)')
  for (const kind of ['vouch', 'denounce'] as const) {
    trust.command(`${kind} <did>`)
      .description(kind === 'vouch' ? 'sign a vouch for a DID' : 'sign a denouncement of a DID (it always wins over vouches)')
      .option('--data <dir>', 'data directory of the running node', DEFAULT_DATA_DIR)
      .option('--note <text>', 'why')
      .action(async (subject: string, opts) => {
        const made = await api<{ uri: string }>(opts.data, 'POST', '/v1/trust', { kind, subject, ...(opts.note !== undefined ? { note: opts.note } : {}) })
        run.io.out(`${kind} ${subject}: ${made.uri}\n`)
      })
  }
  trust.command('list')
    .description('the vouches and denouncements this node has signed')
    .option('--data <dir>', 'data directory of the running node', DEFAULT_DATA_DIR)
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const list = await api<Array<{ kind: string, subject: string, uri: string }>>(opts.data, 'GET', '/v1/trust')
      if (opts.json === true) return run.json(list)
      for (const t of list) run.io.out(`${t.kind.padEnd(8)} ${t.subject}  ${t.uri}\n`)
    })
  addWifCommands(trust, run, DEFAULT_DATA_DIR)
}
