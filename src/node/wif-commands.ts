/**
 * `cmesh trust wif add|list|remove`: the requester's workload identity rules (wif-rules.ts), kept in
 * its data dir for the downstream services it runs. No running node needed.
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { loadWifRules, saveWifRules, wifRuleSchema, wifRulesPath } from './wif-rules.js'
import { NodeError } from './errors.js'
import type { CliRun } from './cli-io.js'

export function addWifCommands (trust: Command, run: CliRun, defaultDataDir: string): void {
  const wif = trust.command('wif').description('which workload identity issuer + subject may do what (for your downstream services)')
  wif.command('add')
    .description('allow a subject of an issuer, presenting tokens for an audience, these actions')
    .requiredOption('--issuer <url>', 'the issuer, as the bid\'s wif.issuer_uri names it')
    .requiredOption('--subject <subject>', 'the subject; a * segment matches any one segment (actx:*:key:z6Mk…:role:default)')
    .requiredOption('--audience <aud>', 'the audience your service expects')
    .requiredOption('--allow <actions>', 'comma-separated actions')
    .option('--data <dir>', 'data directory', defaultDataDir)
    .action(async (opts) => {
      const parsed = wifRuleSchema.safeParse({ issuer: opts.issuer, subject: opts.subject, audience: opts.audience, allow: String(opts.allow).split(',').map((a) => a.trim()).filter((a) => a !== '') })
      if (!parsed.success) throw new NodeError('INPUT_INVALID', `wif rule: ${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? 'invalid'}`)
      const path = wifRulesPath(resolve(opts.data))
      const rules = (await loadWifRules(path)).filter((r) => !(r.issuer === parsed.data.issuer && r.subject === parsed.data.subject && r.audience === parsed.data.audience))
      await saveWifRules(path, [...rules, parsed.data])
      run.io.out(`allowed ${parsed.data.subject} from ${parsed.data.issuer} for ${parsed.data.audience}: ${parsed.data.allow.join(',')}\n`)
    })
  wif.command('list')
    .option('--data <dir>', 'data directory', defaultDataDir)
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const rules = await loadWifRules(wifRulesPath(resolve(opts.data)))
      if (opts.json === true) return run.json(rules)
      for (const r of rules) run.io.out(`${r.issuer}  ${r.subject}  aud=${r.audience}  allow=${r.allow.join(',')}\n`)
    })
  wif.command('remove')
    .requiredOption('--issuer <url>', 'issuer')
    .requiredOption('--subject <subject>', 'subject')
    .option('--data <dir>', 'data directory', defaultDataDir)
    .action(async (opts) => {
      const path = wifRulesPath(resolve(opts.data))
      const rules = await loadWifRules(path)
      const kept = rules.filter((r) => !(r.issuer === opts.issuer && r.subject === opts.subject))
      await saveWifRules(path, kept)
      run.io.out(`removed ${rules.length - kept.length} rule(s)\n`)
    })
}
