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

export const DEFAULT_DATA_DIR = '.cmesh'
export const KEY_FILE_NAME = 'node.key'

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

function keyPath (opts: { key?: string, data?: string }): string {
  return opts.key ?? join(opts.data ?? DEFAULT_DATA_DIR, KEY_FILE_NAME)
}

function printJson (value: unknown): void {
  process.stdout.write(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? toHex(v) : v), 2) + '\n')
}

function warnRefused (refused: RefusedRecord[]): void {
  for (const r of refused) process.stderr.write(`cmesh: refused ${r.file}#${r.index}: ${r.code}: ${r.message}\n`)
}

export function buildProgram (): Command {
  const program = new Command('cmesh')
    .description('compute-mesh: a peer-to-peer compute market node')
    .showHelpAfterError()
    .exitOverride()

  program.command('keygen')
    .description('create the node identity (Ed25519, libp2p key format, mode 0600) and print its DID and peer id')
    .option('--data <dir>', 'data directory', DEFAULT_DATA_DIR)
    .option('--key <file>', 'key file path (default <data>/node.key)')
    .option('--force', 'replace an existing key (the old identity is lost)')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const path = keyPath(opts)
      const { identity } = await createKeyFile(path, { overwrite: opts.force === true })
      if (opts.json === true) printJson({ keyFile: path, did: identity.did, peerId: identity.peerId })
      else process.stdout.write(`key file: ${path}\ndid:      ${identity.did}\npeer id:  ${identity.peerId}\n`)
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
      if (opts.json === true) printJson(summary)
      else process.stdout.write(Object.entries(summary).map(([k, v]) => `${k.padEnd(10)} ${v}`).join('\n') + '\n')
    })

  card.command('show <file...>')
    .description('decode and verify signed records (cards, retirements, snapshots) and print them as JSON')
    .action(async (files: string[]) => {
      let refusedAny = false
      for (const file of files) {
        const { records, refused } = await readRecordsFile(file)
        warnRefused(refused)
        refusedAny ||= refused.length > 0
        for (const r of records) printJson({ uri: r.uri, cid: r.cid.toString(), digest: r.digest, type: r.type.nsid, value: r.value })
      }
      if (refusedAny) process.exitCode = 1
    })

  program.command('pack <out> <file...>')
    .description('merge signed records and snapshots into one collection snapshot file (newest per provider)')
    .option('--at <unix>', 'time to evaluate expiry at (default now)', positiveInt)
    .action(async (out: string, files: string[], opts) => {
      const collection = new ProviderCollection()
      for (const file of files) {
        const { records, refused } = await readRecordsFile(file)
        warnRefused(refused)
        for (const r of records) collection.apply(r, opts.at ?? nowSecs())
      }
      await writeFileAtomic(out, encodeSnapshot(collection.records()))
      process.stdout.write(`${out}: ${collection.size} providers\n`)
    })

  program.command('audit <file...>')
    .description('audit a provider collection: level mix (claimed vs verified), fees, committee cost, capacity')
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
      for (const file of files) {
        const { records, refused } = await readRecordsFile(file)
        warnRefused(refused)
        for (const r of records) collection.apply(r, at)
      }
      const cards = collection.cards(at).map((c) => c.value)
      const report = buildAuditReport(cards, new Map(), {
        floor: opts.floor as AttestationLevel,
        ...(opts.scheme !== undefined ? { scheme: opts.scheme } : {}),
        ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
        ...(opts.committee !== undefined ? { committee: opts.committee } : {}),
        ...(opts.burst !== undefined ? { burst: opts.burst } : {})
      }, at)
      const retired = [...collection.records()].filter((r) => !isCard(r)).length
      if (opts.json === true) process.stdout.write(auditReportToJson(report) + '\n')
      else process.stdout.write(auditReportToText(report) + `\n(held: ${collection.size}, retired: ${retired}, not shown: ${collection.size - cards.length})\n`)
    })

  return program
}

export async function main (argv: string[]): Promise<number> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv, { from: 'user' })
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed usage errors; help and version exit 0.
      return err.exitCode === 0 ? 0 : 2
    }
    if (err instanceof CmeshError) {
      process.stderr.write(`cmesh: ${err.code}: ${err.message}\n`)
      return 1
    }
    process.stderr.write(`cmesh: unexpected error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    return 1
  }
}
