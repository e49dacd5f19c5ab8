/** The grant-files prelude, run for real with /bin/sh in a scratch home. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isPlainGrantPath, userDataWithFiles } from '../../src/backends/grant-files.js'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('grant files prelude', () => {
  it('writes each file with its mode under the home, then runs the user_data unchanged from where it would have run; its exit status is the script\'s', async () => {
    const home = await mkdtemp(join(tmpdir(), 'cmesh-prelude-'))
    const cwd = await mkdtemp(join(tmpdir(), 'cmesh-prelude-cwd-'))
    try {
      const userData = utf8('pwd > "$HOME/ran-in"\ncat "$HOME/.cmesh/wif-credential" > "$HOME/seen"\nprintf \'%s\' "it\'s $((6*7))" > "$HOME/quoted"\nexit 3\n')
      const script = userDataWithFiles(userData, [
        { path: '.cmesh/wif-credential', content: utf8('secret\n'), mode: 0o600 },
        { path: '.cmesh/wif-url', content: utf8('http://127.0.0.1:9/wif/token\n'), mode: 0o644 }
      ], { home: '$HOME', innerPath: join(cwd, 'inner.sh') })
      await writeFile(join(cwd, 'outer.sh'), script)
      const ran = spawnSync('/bin/sh', ['outer.sh'], { cwd, env: { PATH: process.env.PATH, HOME: home } })
      assert.equal(ran.status, 3, ran.stderr.toString())
      assert.equal((await stat(join(home, '.cmesh', 'wif-credential'))).mode & 0o777, 0o600)
      assert.equal((await stat(join(home, '.cmesh', 'wif-url'))).mode & 0o777, 0o644)
      assert.equal(await readFile(join(home, 'seen'), 'utf8'), 'secret\n')
      assert.equal((await readFile(join(home, 'ran-in'), 'utf8')).trim(), cwd, 'the user_data runs from the original directory')
      assert.equal(await readFile(join(home, 'quoted'), 'utf8'), 'it\'s 42')
      assert.ok(!Buffer.from(script).toString().includes('secret'), 'the credential is never in the script as text')
    } finally {
      await rm(home, { recursive: true, force: true })
      await rm(cwd, { recursive: true, force: true })
    }
  })

  it('leaves user_data alone without files, and refuses paths that are not plain and relative', () => {
    const userData = utf8('#cloud-config\n')
    assert.equal(userDataWithFiles(userData, [], { home: '$HOME', innerPath: 'x' }), userData)
    for (const bad of ['/etc/passwd', '../x', 'a/../../b', "a'b", 'a b', 'a//b', '']) assert.equal(isPlainGrantPath(bad), false, bad)
    assert.ok(isPlainGrantPath('.cmesh/wif-credential'))
    assert.throws(() => userDataWithFiles(userData, [{ path: "x';rm -rf /;'", content: utf8('x'), mode: 0o600 }], { home: '$HOME', innerPath: 'x' }), TypeError)
  })
})
