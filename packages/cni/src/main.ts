/** Process entry of the CNI plugin: environment and stdin in, the spec's JSON out. */
import { readFileSync } from 'node:fs';
import { runPlugin } from './plugin.js';

let stdin = '';
try {
  stdin = process.env.CNI_COMMAND === 'VERSION' ? '' : readFileSync(0, 'utf8');
} catch {
  stdin = '';
}
runPlugin(process.env, stdin).then(
  (out) => {
    process.stdout.write(out.stdout);
    process.exitCode = out.exitCode;
  },
  (err: Error) => {
    process.stdout.write(JSON.stringify({ cniVersion: '1.0.0', code: 999, msg: err.message }) + '\n');
    process.exitCode = 1;
  },
);
