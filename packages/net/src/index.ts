export { Ip, netns, type LinkInfo } from './ip.js';
export { run, type RunResult } from './run.js';
export { checkIpArgs, checkNetnsName, ipArgumentProblem, netnsNameProblem } from './args.js';
export { NetCommandError, NetArgumentError, WireGuardError, WireGuardKeyError, KernelWireGuardUnavailableError, IpsecConfigError, IpsecStateError, errorCodes } from './errors.js';
export { WireGuardUapi, ensureWireGuardGo, checkDeviceName, loadOrCreateNodeKey, replaceNodeKey, decodeKey, publicKeyOf, generatePrivateKey, WG_KEY_BYTES, WG_RUN_DIR, MAX_IFNAME, type NodeKeys, type PeerConfig, type PeerStatus, type WireGuardDevice, type WireGuardImplementation } from './wireguard.js';
export { KernelWireGuard, parseWgDump, PERSISTENT_KEEPALIVE_S, type CommandRunner } from './kernel-wireguard.js';
export { ensureWireGuard, type EnsureWireGuardOptions, type WireGuardImplementationChoice } from './ensure-wireguard.js';
export { queueDrops, totalQueueDrops, type QueueDrops } from './drops.js';
export { Xfrm, generateMeshKey, nextKeyId, parseMeshKey, ipsecSpi, keyIdOfSpi, deriveSaKey, canonicalIp, canonicalCidr, checkPeer, parseXfrmStates, IPSEC_AEAD, IPSEC_ICV_BITS, IPSEC_SA_KEY_BYTES, IPSEC_REPLAY_WINDOW, MESH_KEY_BYTES, MIN_KEY_ID, MAX_KEY_ID, type MeshKey, type IpsecPeer, type XfrmStateInfo, type XfrmRunner } from './xfrm.js';
