/**
 * The entry of `weft agent health` and `weft clustermesh-apiserver health` when run as `weft`
 * (bin/weft.js picks it): Kubernetes runs these probes every few seconds on every node, so they
 * load only their own modules, not every command's. main.ts dispatches them the same way.
 */
import { agentHealth, apiserverHealth } from './commands/health.js';
import { exitOnError } from './output.js';

const [command, , ...rest] = process.argv.slice(2);
(command === 'agent' ? agentHealth(rest) : apiserverHealth(rest)).catch(exitOnError);
