export { apiserverPid, etcdPid, startEtcd, pidInNetns, meshConnect, meshDisconnect, MESH_PORT, LAB_ETCD_MAX_TXN_OPS, labUp, labDown, readLabState, demoResources, applyAndWait, etcdEndpoint, agentSocket, rotateLabIpsecKey, LabError, type LabState, type Progress } from './lab.js';
export { labLayout, clusterLayout, WORLD_IP, WORLD_NS, LAB_STATE_DIR, type LabSpec, type ClusterLayout, type NodeLayout } from './layout.js';
export { labEtcdClient, etcdClientFiles, etcdServerFiles, nodeEtcdFiles, etcdPkiDir, type TlsFiles } from './etcd-pki.js';
export { PodRuntime, podNetnsName } from './pod-runtime.js';
export { KUBE_VERSION, HELM_VERSION, KUBE_ETCD_VERSION, KubeToolsError, kubeBinDir, kubeTool, type KubeTool } from './kube/tools.js';
export { ControlPlane, ControlPlaneError, controlPlaneCommands, prepareControlPlane, kubeconfig, type ControlPlaneSpec, type ControlPlaneFiles, type ControlPlaneComponent } from './kube/control-plane.js';
export { labContext, KUBE_APISERVER_PORT, KUBE_SERVICE_CIDR, type LabKubernetes } from './kube-lab.js';
export { forward, parseForwardAddress, type ForwardAddress } from './forward.js';
export { runKubelet, type KubeletOptions } from './kube/kubelet.js';
