/**
 * The requester's workload identity rules: which issuer + subject, presenting a token for which
 * audience, may do what. `cmesh trust wif` writes them to `<data>/wif-rules.json` (0600); the
 * downstream service a requester runs reads them and checks every token against them (wif-verify.ts).
 */
import { readFile, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { z } from 'zod'
import type { WifRule } from '../market/wif-subject.js'
import { writeFileAtomic } from './atomic-file.js'
import { NodeError } from './errors.js'

export const WIF_RULES_FILE = 'wif-rules.json'

export const wifRuleSchema = z.strictObject({
  /** The issuer exactly as tokens name it (`iss`), i.e. the bid's `wif.issuer_uri`. */
  issuer: z.string().url().max(512),
  /** The subject; a `*` segment matches any one segment (wif-subject.ts subjectMatches). */
  subject: z.string().min(1).max(512),
  audience: z.string().min(1).max(512),
  /** Actions this rule allows (the downstream service names its own). */
  allow: z.array(z.string().regex(/^[a-z0-9][a-z0-9:._-]{0,63}$/)).min(1).max(64)
}) satisfies z.ZodType<WifRule>
export type { WifRule }
const rulesSchema = z.array(wifRuleSchema).max(1000)

export function wifRulesPath (dataDir: string): string {
  return join(dataDir, WIF_RULES_FILE)
}

export async function loadWifRules (path: string): Promise<WifRule[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    if (err.code === 'ENOENT') return []
    throw err
  }
  const parsed = rulesSchema.safeParse(JSON.parse(text))
  if (!parsed.success) throw new NodeError('INPUT_INVALID', `${path}: ${parsed.error.issues[0]?.message ?? 'invalid rules'}`)
  return parsed.data
}

export async function saveWifRules (path: string, rules: WifRule[]): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(rulesSchema.parse(rules), null, 2) + '\n'), 0o600)
}
