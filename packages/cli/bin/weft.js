#!/usr/bin/env node
// Entry point linked by npm as `weft`; the command itself is compiled to dist/. The health probes
// take a lighter entry: they run every few seconds on every node (dist/health-main.js).
const [command, sub] = process.argv.slice(2);
require(sub === 'health' && (command === 'agent' || command === 'clustermesh-apiserver') ? '../dist/health-main.js' : '../dist/main.js');
