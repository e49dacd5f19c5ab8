/**
 * `cmesh attest …`: verify a TDX quote against collateral (Intel's root by default), and write
 * simulated (TEST-ONLY) quotes with their collateral and root for tests and demos.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import type { TdxVerification } from '../attestation/tdx-verifier.js'
import type { TrustAnchor } from '../attestation/trust-anchor.js'
import { fromHex } from '../market/bytes.js'
import { NodeError } from './errors.js'
import type { CliRun } from './cli-io.js'
import { readRecordsFile } from './collection-file.js'
import { isCard } from '../market/collection.js'

/** The TDX verification stack (X.509, DCAP, the simulator) loads only for the command that uses it: `cmesh cards` should not pay for it. */
const attestationStack = async () => ({
  ...(await import('../attestation/tdx-verifier.js')),
  ...(await import('../attestation/collateral.js')),
  ...(await import('../attestation/trust-anchor.js')),
  ...(await import('../attestation/policy.js')),
  ...(await import('../attestation/simulator.js')),
  ...(await import('./build-check.js'))
})

async function readQuote (arg: string): Promise<Uint8Array> {
  const text = arg.trim()
  if (/^(0x)?[0-9a-fA-F]+$/.test(text) && text.length > 96) return fromHex(text.replace(/^0x/, ''))
  let bytes: Buffer
  try {
    bytes = await readFile(arg)
  } catch (err: any) {
    throw new NodeError('INPUT_INVALID', `cannot read quote ${arg}: ${err.code ?? err.message}`)
  }
  // A file of hex text (as some tools write quotes) or raw bytes.
  const asText = bytes.toString('latin1').trim()
  if (/^(0x)?[0-9a-fA-F]+$/.test(asText)) return fromHex(asText.replace(/^0x/, ''))
  return new Uint8Array(bytes)
}

function hexArg (value: string, bytes: number, what: string): Uint8Array {
  const clean = value.replace(/^0x/, '')
  if (!new RegExp(`^[0-9a-fA-F]{1,${bytes * 2}}$`).test(clean) || clean.length % 2 !== 0) throw new NodeError('INPUT_INVALID', `${what} must be up to ${bytes} bytes of hex`)
  return fromHex(clean)
}

function printVerdict (run: CliRun, r: TdxVerification): void {
  const lines = [
    `verdict:      ${r.accepted ? 'ACCEPTED' : `REFUSED (${r.code ?? ''})`}${r.simulated ? '  [SIMULATED: test root, not Intel — not production evidence]' : ''}`,
    ...(r.accepted ? [] : [`reason:       ${r.reason ?? ''}`]),
    `root sha256:  ${r.rootSha256}`,
    `verified at:  ${r.verifiedAtUnixSecs} (${new Date(r.verifiedAtUnixSecs * 1000).toISOString()})`,
    ...(r.quoteVersion !== undefined ? [`quote:        v${r.quoteVersion}, ${r.bodyType === 'td15' ? 'TD 1.5' : 'TD 1.0'} body`] : []),
    ...(r.tcbStatus !== undefined ? [`TCB status:   ${r.tcbStatus}${r.tdxModuleStatus !== undefined ? ` (TDX module: ${r.tdxModuleStatus})` : ''}`] : []),
    `advisories:   ${r.advisoryIds.length > 0 ? r.advisoryIds.join(', ') : 'none'}`,
    ...(r.fmspc !== undefined ? [`FMSPC:        ${r.fmspc}`] : [])
  ]
  const m = r.measurements
  if (m !== undefined) {
    lines.push('measurements:')
    for (const [k, v] of Object.entries({ MRTD: m.mrTd, RTMR0: m.rtmr[0], RTMR1: m.rtmr[1], RTMR2: m.rtmr[2], RTMR3: m.rtmr[3], MRCONFIGID: m.mrConfigId, MROWNER: m.mrOwner, MROWNERCONFIG: m.mrOwnerConfig, MRSEAM: m.mrSeam, MRSIGNERSEAM: m.mrSignerSeam, TDATTRIBUTES: m.tdAttributes, XFAM: m.xfam, TEE_TCB_SVN: m.teeTcbSvn, REPORTDATA: m.reportData })) {
      lines.push(`  ${k.padEnd(14)}${v}`)
    }
  }
  run.io.out(lines.join('\n') + '\n')
}

export function addAttestCommands (program: Command, run: CliRun): void {
  const attest = program.command('attest').description('TDX quote verification and the TEST-ONLY simulator')

  attest.command('verify <quote>')
    .description('verify a TDX quote (file: raw or hex; or hex on the command line); exit 0 only when accepted')
    .requiredOption('--collateral <json>', 'collateral JSON (QuoteCollateralV3 shape)')
    .option('--at <unix>', 'verification time in unix seconds (default now)', (v) => Number(v))
    .option('--root <pem>', 'trust root PEM (default: the Intel SGX Root CA); any other root is labelled simulated')
    .option('--production', 'refuse any root but Intel\'s')
    .option('--allow-sw-hardening-needed', 'accept TCB status SWHardeningNeeded too')
    .option('--json', 'print JSON')
    .action(async (quoteArg: string, opts) => {
      const { trustAnchorFromPem, intelTrustAnchor, verifyTdxQuote, parseCollateral, tcbPolicy } = await attestationStack()
      let anchor: TrustAnchor
      if (opts.root !== undefined) {
        let pem: string
        try {
          pem = await readFile(opts.root, 'utf8')
        } catch (err: any) {
          throw new NodeError('INPUT_INVALID', `cannot read root ${opts.root}: ${err.code ?? err.message}`)
        }
        anchor = trustAnchorFromPem(pem, { production: opts.production === true })
      } else anchor = intelTrustAnchor()
      let collateralText: string
      try {
        collateralText = await readFile(opts.collateral, 'utf8')
      } catch (err: any) {
        throw new NodeError('INPUT_INVALID', `cannot read collateral ${opts.collateral}: ${err.code ?? err.message}`)
      }
      const at = opts.at ?? Math.floor(Date.now() / 1000)
      if (!Number.isInteger(at) || at <= 0) throw new NodeError('INPUT_INVALID', '--at takes unix seconds')
      const result = await verifyTdxQuote(await readQuote(quoteArg), parseCollateral(collateralText), {
        anchor,
        atUnixSecs: at,
        policy: tcbPolicy({ allowSwHardeningNeeded: opts.allowSwHardeningNeeded === true })
      })
      if (opts.json === true) run.io.out(JSON.stringify(result, null, 2) + '\n')
      else printVerdict(run, result)
      if (!result.accepted) run.exitCode = 1
    })

  attest.command('check-build <card>')
    .description('rebuild a card\'s build recipe and compare its measurement digest with the card\'s (TdxPlusReproducibleBuild); exit 0 on a match')
    .option('--data <dir>', 'record the result in this node data directory (read by the running node)')
    .option('--trust-recipe', 'run the card\'s recipe command: it comes from the provider, read it first (run without this flag to print it)')
    .option('--timeout <secs>', 'give up on the recipe after this long', (v) => Number(v), 600)
    .option('--json', 'print JSON')
    .action(async (cardPath: string, opts) => {
      const { checkBuild, recordBuildResult, buildKey } = await attestationStack()
      const { records, refused } = await readRecordsFile(cardPath)
      const card = records.find(isCard)
      if (card === undefined) throw new NodeError('INPUT_INVALID', `${cardPath} holds no valid provider card${refused.length > 0 ? ` (${refused[0]?.code ?? ''})` : ''}`)
      const recipe = card.value.buildRecipe
      if (recipe === undefined) throw new NodeError('INPUT_INVALID', `the card of ${card.value.providerId} names no build recipe`)
      if (opts.trustRecipe !== true) {
        // The command is the provider's, not ours: nothing runs until the operator has read it.
        run.io.out(`source:   ${recipe.source}\ncommand:  ${recipe.command}\nmanifest: ${recipe.manifest}\n`)
        throw new NodeError('INPUT_INVALID', 'this runs the provider\'s command with your rights; review it above, then pass --trust-recipe')
      }
      if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) throw new NodeError('INPUT_INVALID', '--timeout takes a positive number of seconds')
      // The recipe runs in its own process group, out of reach of the terminal's ^C: pass it on.
      const interrupted = new AbortController()
      const onSignal = (signal: NodeJS.Signals): void => { interrupted.abort(signal) }
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      let result
      try {
        result = await checkBuild(recipe, card.value.attestationDigest, Math.floor(Date.now() / 1000), { timeoutMs: opts.timeout * 1000, signal: interrupted.signal })
      } catch (err) {
        if (!interrupted.signal.aborted) throw err
        run.io.err(`cmesh: check-build interrupted (${String(interrupted.signal.reason)}): the recipe's process group was killed, nothing recorded\n`)
        run.exitCode = 130
        return
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
      if (opts.data !== undefined) await recordBuildResult(opts.data, buildKey(recipe, card.value.attestationDigest), result)
      if (opts.json === true) run.io.out(JSON.stringify(result, null, 2) + '\n')
      else {
        run.io.out([
          `recipe:   ${recipe.source} :: ${recipe.command} -> ${recipe.manifest}`,
          `expected: ${result.expected}`,
          `rebuilt:  ${result.rebuilt ?? '—'}`,
          `result:   ${result.match ? 'MATCH (reproducible build)' : `MISMATCH${result.error !== undefined ? `: ${result.error}` : ''}`}`,
          ''
        ].join('\n'))
      }
      if (!result.match) run.exitCode = 1
    })

  attest.command('simulate')
    .description('write a TEST-ONLY simulated quote, its collateral and its test root (never valid under Intel\'s root)')
    .option('--out <dir>', 'output directory', 'simulated-quote')
    .option('--report-data <hex>', 'REPORTDATA (up to 64 bytes of hex, zero-padded)')
    .option('--mrtd <hex>', 'MRTD (up to 48 bytes of hex)')
    .option('--seed <text>', 'derive the test PKI keys from this seed (default: fresh random keys)')
    .option('--revoked', 'list the PCK certificate in the PCK CRL (for testing refusals)')
    .action(async (opts) => {
      const { createTestPki, createQuote, createCollateral } = await attestationStack()
      const pki = await createTestPki({ ...(opts.seed !== undefined ? { seed: opts.seed } : {}), revokePckLeaf: opts.revoked === true })
      const quote = await createQuote(pki, {
        ...(opts.reportData !== undefined ? { reportData: hexArg(opts.reportData, 64, '--report-data') } : {}),
        ...(opts.mrtd !== undefined ? { mrTd: hexArg(opts.mrtd, 48, '--mrtd') } : {})
      })
      await mkdir(opts.out, { recursive: true })
      await writeFile(join(opts.out, 'quote.bin'), quote)
      await writeFile(join(opts.out, 'collateral.json'), JSON.stringify(await createCollateral(pki), null, 2) + '\n')
      await writeFile(join(opts.out, 'test-root.pem'), pki.root.toString('pem') + '\n')
      run.io.out([
        `wrote ${join(opts.out, 'quote.bin')} (${quote.length} bytes), collateral.json, test-root.pem — TEST ONLY, simulated`,
        `verify: cmesh attest verify ${join(opts.out, 'quote.bin')} --collateral ${join(opts.out, 'collateral.json')} --root ${join(opts.out, 'test-root.pem')}`,
        ''
      ].join('\n'))
    })
}

