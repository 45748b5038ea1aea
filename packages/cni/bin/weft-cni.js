#!/usr/bin/env node
// The CNI plugin executable (CNI spec 1.0); the logic is compiled to dist/.
require('../dist/main.js');
