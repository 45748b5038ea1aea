export { Ip, netns, type LinkInfo } from './ip.js';
export { run, type RunResult } from './run.js';
export { NetCommandError, errorCodes } from './errors.js';
