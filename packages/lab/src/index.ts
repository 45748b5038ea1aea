export { apiserverPid, etcdPid, startEtcd, pidInNetns, meshConnect, meshDisconnect, MESH_PORT, LAB_ETCD_MAX_TXN_OPS, labUp, labDown, readLabState, demoResources, applyAndWait, etcdEndpoint, agentSocket, rotateLabIpsecKey, LabError, type LabState, type Progress } from './lab.js';
export { labLayout, clusterLayout, WORLD_IP, WORLD_NS, LAB_STATE_DIR, type LabSpec, type ClusterLayout, type NodeLayout } from './layout.js';
export { labEtcdClient, etcdClientFiles, etcdServerFiles, nodeEtcdFiles, etcdPkiDir, type TlsFiles } from './etcd-pki.js';
export { PodRuntime, podNetnsName } from './pod-runtime.js';
