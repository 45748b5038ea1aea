#!/usr/bin/env node
// Entry point linked by npm as `weft`; the command itself is compiled to dist/.
require('../dist/main.js');
