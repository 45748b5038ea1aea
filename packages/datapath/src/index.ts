export { BpfObject } from './bpf-object.js';
export { BpfMap, BPF_ANY, BPF_NOEXIST, BPF_EXIST } from './bpf-map.js';
export { attachTc, detachTc, queryTc, type TcTarget } from './tc.js';
export { RingBufferReader } from './ringbuf.js';
export { BpfLoadError, BpfSyscallError, BpfAttachError, errnoName, errorCodes } from './errors.js';
export * from './maps/layout.js';
export * from './maps/codec.js';
export { DropReason, DropReasonText, Verdict, ObservationPoint, FlowFlag, dropReasonName } from './reasons.js';
export { ensureBpffs, bpffsMounted, BPFFS } from './bpffs.js';
