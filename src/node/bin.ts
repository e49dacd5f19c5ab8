#!/usr/bin/env node
// The executable entry point: nothing but starting the CLI, so tests can import cli.ts freely.
import './polyfills.js'
import { main } from './cli.js'

process.exitCode = await main(process.argv.slice(2))
