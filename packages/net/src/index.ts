export { Ip, netns, type LinkInfo } from './ip.js';
export { run, type RunResult } from './run.js';
export { NetCommandError, WireGuardError, WireGuardKeyError, IpsecConfigError, IpsecStateError, errorCodes } from './errors.js';
export { WireGuardUapi, ensureWireGuardGo, loadOrCreateNodeKey, replaceNodeKey, decodeKey, publicKeyOf, generatePrivateKey, WG_KEY_BYTES, WG_RUN_DIR, MAX_IFNAME, type NodeKeys, type PeerConfig, type PeerStatus } from './wireguard.js';
export { Xfrm, generateMeshKey, nextKeyId, parseMeshKey, ipsecSpi, keyIdOfSpi, deriveSaKey, canonicalIp, canonicalCidr, checkPeer, parseXfrmStates, IPSEC_AEAD, IPSEC_ICV_BITS, IPSEC_SA_KEY_BYTES, IPSEC_REPLAY_WINDOW, MESH_KEY_BYTES, MIN_KEY_ID, MAX_KEY_ID, type MeshKey, type IpsecPeer, type XfrmStateInfo, type XfrmRunner } from './xfrm.js';
