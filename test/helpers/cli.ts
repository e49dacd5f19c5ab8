import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const bin = fileURLToPath(new URL('../../src/node/bin.ts', import.meta.url))
// Resolved here: `--import tsx` would otherwise be looked up from the child's (temporary) cwd.
const tsx = import.meta.resolve('tsx')

export interface CliResult { code: number | null, stdout: string, stderr: string }

/** Runs `cmesh` from source (no build needed) as a real child process. */
export async function runCli (args: string[], cwd: string): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', tsx, bin, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d })
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, stdout, stderr }
}
