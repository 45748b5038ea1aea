import assert from 'node:assert/strict';
import { WeftError } from '@weft/common';
import { BpfAttachError, BpfLoadError, BpfSyscallError, errnoName, errorCodes, RingBufferCorruptError } from './errors.js';

describe('datapath errors', () => {
  it('names errnos, the kernel-internal ENOTSUPP and libbpf codes included', () => {
    assert.equal(errnoName(7), 'E2BIG (7)');
    assert.equal(errnoName(2), 'ENOENT (2)');
    assert.equal(errnoName(524), 'ENOTSUPP (524)');
    assert.equal(errnoName(4001), 'LIBBPF_ERRNO__FORMAT (4001)');
    assert.equal(errnoName(99999), 'errno (99999)');
  });

  it('says which operation failed on which map, with the errno', () => {
    const err = new BpfSyscallError('update map weft_ipcache', 7);
    assert.ok(err instanceof WeftError);
    assert.equal(err.code, 'WEFT_ERR_BPF_SYSCALL');
    assert.equal(err.message, 'Cannot update map weft_ipcache: E2BIG (7)');
    assert.equal(err.errno, 7);
    assert.equal(new BpfSyscallError('batch-update map m', 7, '2 of 3 entries written').message, 'Cannot batch-update map m: E2BIG (7): 2 of 3 entries written');
  });

  it('says where a ring buffer header claims more than the ring holds', () => {
    const err = new RingBufferCorruptError('ring buffer weft_events', 4096, 2_000_000, 1_048_576);
    assert.ok(err instanceof WeftError);
    assert.equal(err.code, 'WEFT_ERR_RINGBUF_CORRUPT');
    assert.equal(err.message, 'ring buffer weft_events: the record header at position 4096 claims 2000000 bytes, more than the ring\'s 1048576');
  });

  it('puts the libbpf messages and the tail of the verifier log in a load error', () => {
    const log = Array.from({ length: 100 }, (_, i) => `${i}: insn`).join('\n') + '\ninvalid access to packet\n';
    const err = new BpfLoadError('Cannot load program p of x.o: EACCES (13)', { log, libbpfMessages: ["prog 'p': BPF program load failed: Permission denied"], errno: 13 });
    assert.equal(err.code, 'WEFT_ERR_BPF_LOAD');
    assert.match(err.message, /^Cannot load program p of x\.o: EACCES \(13\)\n--- libbpf ---\nprog 'p': BPF program load failed/);
    assert.match(err.message, /--- verifier log ---\n\.\.\. \(41 earlier lines in err\.log\)\n41: insn/);
    assert.match(err.message, /invalid access to packet$/);
    assert.equal(err.log, log.trim());
    assert.equal(err.errno, 13);
  });

  it('names the interface, the direction and the kernel message of an attach error', () => {
    const err = new BpfAttachError('attach a tc program to', { ifindex: 7, ifname: 'lxc1', direction: 'egress' }, 22, ['kernel: Cannot find specified filter chain']);
    assert.equal(err.code, 'WEFT_ERR_BPF_ATTACH');
    assert.equal(err.message, 'Cannot attach a tc program to lxc1 (ifindex 7) egress: EINVAL (22); kernel: Cannot find specified filter chain');
    assert.match(new BpfAttachError('query', { ifindex: 9, direction: 'ingress' }, 19).message, /^Cannot query ifindex 9 \(no such interface here\) ingress: ENODEV \(19\)$/);
  });

  it('lists its codes for the documentation check', () => {
    assert.deepEqual([...errorCodes], ['WEFT_ERR_BPF_LOAD', 'WEFT_ERR_BPF_SYSCALL', 'WEFT_ERR_BPF_ATTACH', 'WEFT_ERR_RINGBUF_CORRUPT']);
  });
});
