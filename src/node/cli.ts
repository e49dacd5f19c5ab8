/**
 * `cmesh`: the one program. Subcommands are thin: they parse, call the layers below, print.
 * Errors go to stderr as `cmesh: CODE: message` with a non-zero exit (2 for usage errors).
 */
import { Command, InvalidArgumentError, Option, CommanderError } from 'commander'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CmeshError } from '../market/errors.js'
import { ATTESTATION_LEVELS, type AttestationLevel } from '../market/ladder.js'
import { signRecord } from '../market/record.js'
import { ProviderCardType } from '../market/provider-card.js'
import { ProviderCollection, isCard } from '../market/collection.js'
import { toHex } from '../market/bytes.js'
import { createKeyFile, loadKeyFile } from './key-store.js'
import { cardFromDraft } from './card-draft.js'
import { encodeSnapshot, readRecordsFile, type RefusedRecord } from './collection-file.js'
import { writeFileAtomic } from './atomic-file.js'
import { buildAuditReport, auditReportToJson, auditReportToText } from './audit-report.js'
import { NodeError } from './errors.js'
import type { CmeshNode } from './node.js'
import { readConfigFile, resolveConfig, ROLES } from './config.js'
import { apiGet, apiRequest } from './api.js'
import { decodeSnapshot, type RecordsRead } from './collection-file.js'
import { capabilityUnion } from '../market/provider-card.js'
import { addAttestCommands } from './attest-commands.js'
import { addContractCommands } from './contract-commands.js'
import { CliRun, processIo, type CliIo } from './cli-io.js'
import { multiaddrProblem } from './multiaddr-text.js'

export const DEFAULT_DATA_DIR = '.cmesh'
export const KEY_FILE_NAME = 'node.key'
/** A running node hit an error nobody could catch (EX_SOFTWARE): restart it. */
export const EXIT_FATAL = 70

const nowSecs = (): number => Math.floor(Date.now() / 1000)

function positiveInt (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer')
  return n
}

function nonNegativeNumber (value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a non-negative number')
  return n
}

function port (value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError('expected a port number (0-65535)')
  return n
}

/** A variadic multiaddr option: each value checked as it is parsed (a usage error, exit 2). */
function multiaddrs (options: { peer?: boolean } = {}): (value: string, previous: string[] | undefined) => string[] {
  return (value, previous) => {
    const problem = multiaddrProblem(value, options)
    if (problem !== undefined) throw new InvalidArgumentError(problem)
    return [...(previous ?? []), value]
  }
}

function keyPath (opts: { key?: string, data?: string }): string {
  return opts.key ?? join(opts.data ?? DEFAULT_DATA_DIR, KEY_FILE_NAME)
}

function warnRefused (run: CliRun, refused: RefusedRecord[]): void {
  for (const r of refused) run.io.err(`cmesh: refused ${r.file}#${r.index}: ${r.code}: ${r.message}\n`)
}

export function buildProgram (run: CliRun = new CliRun(processIo)): Command {
  const program = new Command('cmesh')
    .description('compute-mesh: a peer-to-peer compute market node')
    .showHelpAfterError()
    .exitOverride()
    // Set before any subcommand exists: commander copies it to each one as it is created.
    .configureOutput({ writeOut: run.io.out, writeErr: run.io.err })

  program.command('keygen')
    .description('create the node identity (Ed25519, libp2p key format, mode 0600) and print its DID and peer id')
    .option('--data <dir>', 'data directory', DEFAULT_DATA_DIR)
    .option('--key <file>', 'key file path (default <data>/node.key)')
    .option('--force', 'replace an existing key (the old identity is lost)')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const path = keyPath(opts)
      const { identity } = await createKeyFile(path, { overwrite: opts.force === true })
      if (opts.json === true) run.json({ keyFile: path, did: identity.did, peerId: identity.peerId })
      else run.io.out(`key file: ${path}\ndid:      ${identity.did}\npeer id:  ${identity.peerId}\n`)
    })

  const card = program.command('card').description('provider cards')
  card.command('sign <draft>')
    .description('complete a card draft (JSON) with this node\'s identity and times, sign it, write DAG-CBOR')
    .option('--data <dir>', 'data directory', DEFAULT_DATA_DIR)
    .option('--key <file>', 'key file path (default <data>/node.key)')
    .option('--out <file>', 'output file (default <draft without .json>.card.cbor)')
    .option('--json', 'print JSON')
    .action(async (draftPath: string, opts) => {
      const { identity } = await loadKeyFile(keyPath(opts))
      let json: unknown
      try {
        json = JSON.parse(await readFile(draftPath, 'utf8'))
      } catch (err: any) {
        throw new NodeError('INPUT_INVALID', `cannot read card draft ${draftPath}: ${err.code ?? err.message}`)
      }
      const signed = signRecord(ProviderCardType, cardFromDraft(json, identity, nowSecs()), identity)
      const out = opts.out ?? draftPath.replace(/\.json$/i, '') + '.card.cbor'
      await writeFileAtomic(out, signed.bytes)
      const summary = { file: out, uri: signed.uri, cid: signed.cid.toString(), cardDigest: toHex(signed.digest), bytes: signed.bytes.length }
      if (opts.json === true) run.json(summary)
      else run.io.out(Object.entries(summary).map(([k, v]) => `${k.padEnd(10)} ${v}`).join('\n') + '\n')
    })

  card.command('show <file...>')
    .description('decode and verify signed records (cards, retirements, snapshots) and print them as JSON')
    .action(async (files: string[]) => {
      let refusedAny = false
      for (const file of files) {
        const { records, refused } = await readRecordsFile(file)
        warnRefused(run, refused)
        refusedAny ||= refused.length > 0
        for (const r of records) run.json({ uri: r.uri, cid: r.cid.toString(), digest: r.digest, type: r.type.nsid, value: r.value })
      }
      if (refusedAny) run.exitCode = 1
    })

  program.command('pack <out> <file...>')
    .description('merge signed records and snapshots into one collection snapshot file (newest per provider)')
    .option('--at <unix>', 'time to evaluate expiry at (default now)', positiveInt)
    .action(async (out: string, files: string[], opts) => {
      const collection = new ProviderCollection()
      for (const file of files) {
        const { records, refused } = await readRecordsFile(file)
        warnRefused(run, refused)
        for (const r of records) collection.apply(r, opts.at ?? nowSecs())
      }
      await writeFileAtomic(out, encodeSnapshot(collection.records()))
      run.io.out(`${out}: ${collection.size} providers\n`)
    })

  program.command('audit [file...]')
    .description('audit a provider collection (snapshot files, or the running node\'s): level mix (claimed vs verified), fees, committee cost, capacity')
    .option('--data <dir>', 'data directory of the running node to read when no file is given', DEFAULT_DATA_DIR)
    .addOption(new Option('--floor <level>', 'attestation floor').choices(ATTESTATION_LEVELS).default('Software'))
    .option('--scheme <scheme>', 'only providers serving this scheme')
    .option('--threshold <t>', 'signatures needed (threshold of the committee)', positiveInt)
    .option('--committee <n>', 'committee size', positiveInt)
    .option('--burst <rate>', 'requests per second the committee must absorb', nonNegativeNumber)
    .option('--at <unix>', 'evaluate expiry at this time (default now)', positiveInt)
    .option('--json', 'print JSON')
    .action(async (files: string[], opts) => {
      const at = opts.at ?? nowSecs()
      const collection = new ProviderCollection()
      for (const { records, refused } of await readSources(files, opts.data)) {
        warnRefused(run, refused)
        for (const r of records) collection.apply(r, at)
      }
      const cards = collection.cards(at).map((c) => c.value)
      // A running node has checked its cards' evidence; files alone prove nothing beyond signatures.
      const verified = new Map<string, AttestationLevel>()
      const simulated = new Set<string>()
      if (files.length === 0) {
        const levels = await (await apiGet(opts.data, '/v1/verified')).json() as Record<string, { level: AttestationLevel, simulated: boolean }>
        for (const [providerId, v] of Object.entries(levels)) {
          verified.set(providerId, v.level)
          if (v.simulated && v.level !== 'Software') simulated.add(providerId)
        }
      }
      const report = buildAuditReport(cards, verified, {
        floor: opts.floor as AttestationLevel,
        ...(opts.scheme !== undefined ? { scheme: opts.scheme } : {}),
        ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
        ...(opts.committee !== undefined ? { committee: opts.committee } : {}),
        ...(opts.burst !== undefined ? { burst: opts.burst } : {})
      }, at, simulated)
      const retired = [...collection.records()].filter((r) => !isCard(r)).length
      if (opts.json === true) run.io.out(auditReportToJson(report) + '\n')
      else run.io.out(auditReportToText(report) + `\n(held: ${collection.size}, retired: ${retired}, not shown: ${collection.size - cards.length})\n`)
    })

  program.command('start')
    .description('run a node until SIGINT/SIGTERM (embedded defaults: provider + requester on 127.0.0.1, data in ./.cmesh)')
    .option('--config <file>', 'JSON config file')
    .option('--data <dir>', 'data directory (key, store, api.json)')
    .option('--listen <addr...>', 'multiaddrs to listen on (default /ip4/127.0.0.1/tcp/0)', multiaddrs())
    .option('--announce <addr...>', 'multiaddrs to announce instead of the listen ones', multiaddrs())
    .option('--bootstrap <addr...>', 'peers to join through (multiaddrs with /p2p/<peer id>)', multiaddrs({ peer: true }))
    .option('--network <name>', 'network name (topics and protocol ids are per network)')
    .option('--api-port <port>', 'local API port (default: random)', port)
    .addOption(new Option('--roles <role...>', 'roles to play').choices(ROLES))
    .option('--new-identity', 'create a new node key even though the data dir holds a store (the old identity is gone)')
    .action(async (opts) => {
      const file = opts.config !== undefined ? await readConfigFile(opts.config) as Record<string, unknown> : {}
      const config = resolveConfig({
        ...file,
        ...(opts.data !== undefined ? { dataDir: opts.data } : {}),
        ...(opts.listen !== undefined ? { listen: opts.listen } : {}),
        ...(opts.announce !== undefined ? { announce: opts.announce } : {}),
        ...(opts.bootstrap !== undefined ? { bootstrap: opts.bootstrap } : {}),
        ...(opts.network !== undefined ? { network: opts.network } : {}),
        ...(opts.apiPort !== undefined ? { apiPort: opts.apiPort } : {}),
        ...(opts.roles !== undefined ? { roles: opts.roles } : {})
      })
      // The node (libp2p, the services and their dependencies) loads only for `start`.
      const node: CmeshNode = new (await import('./node.js')).CmeshNode({ config, newIdentity: opts.newIdentity === true })
      // Signal handlers go in before anything is printed: whoever reads the banner may signal at
      // once. A signal during start-up is held until the node is up, then honoured; a start that
      // fails has already stopped whatever it opened, and takes its handlers with it.
      let resolveStopped: () => void = () => {}
      const stopped = new Promise<void>((resolve) => { resolveStopped = resolve })
      let started = false
      let requested: string | undefined
      const stopNow = (signal: string): void => {
        run.io.err(`cmesh: ${signal}: stopping\n`)
        node.stop().then(resolveStopped, (err) => { run.io.err(`cmesh: stop failed: ${(err as Error).message}\n`); resolveStopped() })
      }
      const onSignal = (signal: NodeJS.Signals): void => { if (started) stopNow(signal); else requested = signal }
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      // Anything thrown where nobody can catch it leaves the node in a state nobody knows: say what
      // it was, with its stack, and exit non-zero so a supervisor restarts the node (records already
      // acknowledged are on disk; LevelDB's lock goes with the process).
      const onFatal = (err: unknown): void => {
        run.io.err(`cmesh: UNCAUGHT: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
        process.exit(EXIT_FATAL)
      }
      process.on('uncaughtException', onFatal)
      process.on('unhandledRejection', onFatal)
      try {
        await node.start()
      } catch (err) {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
        process.off('uncaughtException', onFatal)
        process.off('unhandledRejection', onFatal)
        throw err
      }
      started = true
      const embedded = opts.config === undefined
      run.io.out([
        `cmesh node running${embedded ? ' on embedded defaults' : ''} (network ${config.network})`,
        `  peer id:  ${node.libp2p.peerId.toString()}`,
        `  did:      ${node.identity.did}`,
        `  roles:    ${config.roles.join(', ')}${config.card === undefined && config.roles.includes('provider') ? ' (card: the embedded local backend)' : ''}`,
        `  attest:   ${config.attest.provider === 'simulated' ? 'SIMULATED TDX quotes under the TEST-ONLY devnet root (not production evidence)' : config.attest.provider === 'configfs-tsm' ? 'TDX quotes from configfs-tsm' : 'no quote provider (Software only)'}; requires ${config.attest.require} of peers${config.attest.production ? '; production (Intel root only)' : ''}`,
        `  data:     ${join(config.dataDir)}`,
        `  api:      ${node.apiUrl ?? 'off'} (token in ${join(config.dataDir, 'api.json')})`,
        ...(node.apiUrl !== undefined ? [`  dashboard: ${node.services.dashboard.loginUrl() ?? ''} (one-time login link; \`cmesh dashboard\` prints another)`] : []),
        ...(node.services.publicHttp.started ? [`  http:     ${node.services.publicHttp.url} (${[node.services.wif.enabled ? 'workload identity issuer /wif' : '', node.services.payments.terms !== undefined && config.roles.includes('provider') ? 'x402 payments /x402' : ''].filter((x) => x !== '').join(', ')})`] : []),
        ...(node.services.payments.address !== undefined ? [`  payment:  ${node.services.payments.terms?.network ?? ''} token ${config.payment?.asset ?? ''}, this node's EVM address ${node.services.payments.address} (key in ${join(config.dataDir, 'evm.key')})`] : []),
        ...node.libp2p.getMultiaddrs().map((a) => `  listen:   ${a.toString()}`),
        `  join it:  cmesh start --data <other dir> --bootstrap ${node.libp2p.getMultiaddrs()[0]?.toString() ?? '<addr>'}`,
        '  see it:   cmesh cards   |   cmesh audit   |   cmesh status   (Ctrl-C stops)',
        ''
      ].join('\n'))
      if (requested !== undefined) stopNow(requested)
      await stopped
    })

  program.command('dashboard')
    .description('print a new one-time login link to the running node\'s dashboard (open it in a browser on this machine)')
    .option('--data <dir>', 'data directory of the running node', DEFAULT_DATA_DIR)
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const { url } = await (await apiRequest(opts.data, 'POST', '/v1/dashboard/login', {})).json() as { url: string }
      if (opts.json === true) return run.json({ url })
      run.io.out(`${url}\n(works once; the browser then holds a session for 12 hours of disuse)\n`)
    })

  program.command('cards')
    .description('list the running node\'s provider collection (every record re-verified here)')
    .option('--data <dir>', 'data directory of the running node', DEFAULT_DATA_DIR)
    .option('--at <unix>', 'evaluate expiry at this time (default now)', positiveInt)
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const at = opts.at ?? nowSecs()
      const [{ records, refused }] = await readSources([], opts.data) as [RecordsRead]
      warnRefused(run, refused)
      const collection = new ProviderCollection()
      for (const r of records) collection.apply(r, at)
      const cards = collection.cards(at)
      const verified = await (await apiGet(opts.data, '/v1/verified')).json() as Record<string, { level: string, simulated: boolean, code?: string }>
      if (opts.json === true) {
        run.json(cards.map((c) => ({ uri: c.uri, cid: c.cid.toString(), cardDigest: c.digest, card: c.value, verified: verified[c.value.providerId] ?? null })))
        return
      }
      run.io.out(`${cards.length} provider cards (held ${collection.size})\n`)
      for (const c of cards) {
        const u = capabilityUnion(c.value)
        const v = verified[c.value.providerId]
        const proven = v === undefined ? 'not yet checked' : `${v.level}${v.simulated && v.level !== 'Software' ? ' (SIMULATED)' : ''}`
        run.io.out(`${c.value.providerId}  claims ${c.value.attestationLevel}, verified ${proven}  fee ${c.value.feePerPartialWei} wei  cap ${c.value.capacityPerSecond}/s  ` +
          `regions ${u.regions.join(',')}  expires ${new Date(c.value.expiresAtUnixSecs * 1000).toISOString()}\n`)
      }
    })

  program.command('status')
    .description('the running node\'s status (peer id, peers, collection size, gossip verdicts)')
    .option('--data <dir>', 'data directory of the running node', DEFAULT_DATA_DIR)
    .action(async (opts) => {
      const res = await apiGet(opts.data, '/v1/status')
      run.io.out(JSON.stringify(await res.json(), null, 2) + '\n')
    })

  addAttestCommands(program, run)
  addContractCommands(program, run)

  return program
}

/** Records from snapshot files, or from the running node's API when no file is named. */
async function readSources (files: string[], dataDir: string): Promise<RecordsRead[]> {
  if (files.length > 0) return await Promise.all(files.map(readRecordsFile))
  const res = await apiGet(dataDir, '/v1/collection')
  return [decodeSnapshot(new Uint8Array(await res.arrayBuffer()), `node:${dataDir}`)]
}

export async function main (argv: string[], io: CliIo = processIo): Promise<number> {
  const run = new CliRun(io)
  const program = buildProgram(run)
  try {
    await program.parseAsync(argv, { from: 'user' })
    return run.exitCode
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed usage errors; help and version exit 0.
      return err.exitCode === 0 ? 0 : 2
    }
    if (err instanceof CmeshError) {
      io.err(`cmesh: ${err.code}: ${err.message}\n`)
      return 1
    }
    io.err(`cmesh: unexpected error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    return 1
  }
}
