#!/usr/bin/env node
// The executable entry point: nothing but starting the CLI, so tests can import cli.ts freely.
// The process exits with main's code once it returns: a command that failed (a node whose start
// failed included) never lingers on a handle some dependency left behind.
import './polyfills.js'
import { main } from './cli.js'

process.exit(await main(process.argv.slice(2)))
