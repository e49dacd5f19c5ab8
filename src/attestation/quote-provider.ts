/**
 * Where quotes come from. On a TDX guest: Linux configfs-tsm (write 64 bytes of REPORTDATA to
 * `inblob`, read the quote from `outblob`); collateral is configured (a PCCS fetch is the
 * operator's job). Everywhere else: the TEST-ONLY simulator, whose results verify only under its
 * test root and are labelled simulated.
 */
import { mkdtemp, readFile, rmdir, writeFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import { AttestationError } from './errors.js'
import type { Collateral } from './collateral.js'
import { createCollateral, createQuote, createTestPki, testRootDer, DEVNET_TEST_PKI_SEED, type SimulatedTd, type TestPki } from './simulator.js'
import { trustAnchorFromDer, type TrustAnchor } from './trust-anchor.js'

export interface QuoteProvider {
  readonly kind: 'configfs-tsm' | 'simulated'
  readonly simulated: boolean
  /** A quote whose REPORTDATA is exactly `reportData` (64 bytes). */
  quote: (reportData: Uint8Array) => Promise<Uint8Array>
  /** Collateral a verifier needs for this provider's quotes. */
  collateral: () => Promise<Collateral>
}

export const CONFIGFS_TSM_REPORT_DIR = '/sys/kernel/config/tsm/report'

export class ConfigfsTsmQuoteProvider implements QuoteProvider {
  readonly kind = 'configfs-tsm' as const
  readonly simulated = false

  constructor (private readonly init: { collateral: Collateral, reportDir?: string }) {}

  async quote (reportData: Uint8Array): Promise<Uint8Array> {
    if (reportData.length !== 64) throw new AttestationError('QUOTE_PROVIDER', 'REPORTDATA is 64 bytes')
    const base = this.init.reportDir ?? CONFIGFS_TSM_REPORT_DIR
    try {
      await access(base)
    } catch {
      throw new AttestationError('QUOTE_PROVIDER', `configfs-tsm is not available (${base} missing): not a TDX guest, or configfs not mounted`)
    }
    // One report entry per request: configfs-tsm ties a generation to the entry, so nothing is shared.
    const entry = await mkdtemp(join(base, 'cmesh-'))
    try {
      await writeFile(join(entry, 'inblob'), reportData)
      const provider = (await readFile(join(entry, 'provider'), 'utf8').catch(() => '')).trim()
      if (provider !== '' && provider !== 'tdx_guest') throw new AttestationError('QUOTE_PROVIDER', `configfs-tsm provider is ${provider}, not tdx_guest`)
      return new Uint8Array(await readFile(join(entry, 'outblob')))
    } catch (err) {
      if (err instanceof AttestationError) throw err
      throw new AttestationError('QUOTE_PROVIDER', `configfs-tsm quote failed: ${(err as Error).message}`)
    } finally {
      await rmdir(entry).catch(() => {})
    }
  }

  async collateral (): Promise<Collateral> {
    return this.init.collateral
  }
}

/** TEST ONLY: quotes from the simulator, for nodes without TDX hardware. */
export class SimulatedQuoteProvider implements QuoteProvider {
  readonly kind = 'simulated' as const
  readonly simulated = true
  private cachedCollateral: Collateral | undefined

  private constructor (private pki: TestPki, private readonly seed: string, private readonly td: SimulatedTd, private readonly now: () => number) {}

  /**
   * The shared devnet test PKI by default, so simulated nodes can verify one another. `now` (ms) is
   * the clock its collateral is dated by: the node's, so tests that move time move it too.
   */
  static async create ({ seed = DEVNET_TEST_PKI_SEED, td = {}, now = Date.now }: { seed?: string, td?: SimulatedTd, now?: () => number } = {}): Promise<SimulatedQuoteProvider> {
    return new SimulatedQuoteProvider(await createTestPki({ seed, now: new Date(now()) }), seed, td, now)
  }

  /** Test CRLs and TCB Info last 30 days: a long-running node re-issues them (same seeded keys) daily. */
  private async fresh (): Promise<TestPki> {
    if (this.now() - this.pki.now.getTime() > 86_400_000) {
      this.pki = await createTestPki({ seed: this.seed, now: new Date(this.now()) })
      this.cachedCollateral = undefined
    }
    return this.pki
  }

  /** The anchor that verifies this provider's quotes (never Intel's). */
  get trustAnchor (): TrustAnchor {
    return trustAnchorFromDer(testRootDer(this.pki))
  }

  async quote (reportData: Uint8Array): Promise<Uint8Array> {
    if (reportData.length !== 64) throw new AttestationError('QUOTE_PROVIDER', 'REPORTDATA is 64 bytes')
    return await createQuote(await this.fresh(), { ...this.td, reportData })
  }

  async collateral (): Promise<Collateral> {
    const pki = await this.fresh()
    this.cachedCollateral ??= await createCollateral(pki)
    return this.cachedCollateral
  }
}
