/**
 * Certificates for the mesh: a CA per cluster, a server certificate for its
 * clustermesh-apiserver, and one client certificate per remote, signed by our
 * CA with CN = the remote's cluster name. Issued in process by the kvstore's
 * pki module (ECDSA P-256, no openssl, no CA key on disk).
 */
export { createCa, issue, type Pem } from '@weft/kvstore';
