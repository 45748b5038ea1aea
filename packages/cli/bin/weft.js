#!/usr/bin/env node
// Entry point linked by npm as `weft`; the command itself is compiled to dist/. The health probes
// take a lighter entry: they run every few seconds on every node (dist/health-main.js). Their
// --help is the full command line's (it has the command table's help).
const args = process.argv.slice(2);
const [command, sub] = args;
const probe = sub === 'health' && (command === 'agent' || command === 'clustermesh-apiserver') && !args.includes('--help') && !args.includes('-h');
require(probe ? '../dist/health-main.js' : '../dist/main.js');
