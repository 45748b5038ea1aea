export { Ip, netns, type LinkInfo } from './ip.js';
export { run, type RunResult } from './run.js';
export { NetCommandError, WireGuardError, WireGuardKeyError, errorCodes } from './errors.js';
export { WireGuardUapi, ensureWireGuardGo, loadOrCreateNodeKey, decodeKey, publicKeyOf, generatePrivateKey, WG_KEY_BYTES, WG_RUN_DIR, MAX_IFNAME, type NodeKeys, type PeerConfig, type PeerStatus } from './wireguard.js';
