/** The encryption API: peers, keys and strictness (GET /v1/encryption), a key rotation (POST /v1/encryption/rotate). */
import { ApiError, type ApiServer } from './api.js';
import type { Datapath } from './datapath-port.js';
import type { EncryptionStatus, NodeEncryption } from './encryption.js';
import { RotationInProgressError, RotationUnavailableError } from './errors.js';

export function encryptionRoutes(api: ApiServer, p: { encryption: () => NodeEncryption | undefined; datapath: Datapath }): void {
  api.route('GET', '/v1/encryption', async (): Promise<EncryptionStatus> => {
    const encryption = p.encryption();
    if (!encryption) return { mode: 'off', strict: false, clearIngress: { dropped: false }, peers: [], refused: [] };
    const s = await encryption.status();
    const filter = p.datapath.clearIngressFilter();
    // from_underlay drops a peer's clear pod and tunnel traffic in every mode; IPsec's XFRM policies refuse clear pod traffic too.
    const clearIngress = filter ? { dropped: true, by: `from_underlay on ${filter}${s.mode === 'ipsec' ? ' and XFRM in policies (ESP required)' : ''}` } : { dropped: false };
    return { ...s, clearIngress };
  });
  api.route('POST', '/v1/encryption/rotate', async () => {
    const encryption = p.encryption();
    if (!encryption) throw new ApiError(400, RotationUnavailableError.code, 'Cannot rotate keys: encryption is off on this node');
    try {
      return encryption.rotate('manual');
    } catch (err) {
      if (err instanceof RotationInProgressError || err instanceof RotationUnavailableError) throw new ApiError(409, err.code, err.message);
      throw err;
    }
  });
}
