/**
 * Packets as tests and the lab's attack tools build them: an inner Ethernet/IPv4/UDP frame and the
 * VXLAN and Geneve payloads that carry it (what a tunnel device receives after the outer UDP
 * header). One builder, so the datapath tests and the end-to-end injections send the same bytes.
 */

export interface InnerUdp {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  data: Buffer;
}

/** Ethernet/IPv4/UDP with a valid IP header checksum and UDP checksum 0 (none: valid over IPv4). */
export function udpFrame({ src, dst, sport, dport, data }: InnerUdp): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + data.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from(src.split('.').map(Number)).copy(ip, 12);
  Buffer.from(dst.split('.').map(Number)).copy(ip, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  ip.writeUInt16BE(~sum & 0xffff, 10);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + data.length, 4);
  const eth = Buffer.from('020000bb0001' + '020000aa0001' + '0800', 'hex');
  return Buffer.concat([eth, ip, udp, data]);
}

/** A VXLAN payload: the header with `vni` (I flag set), then the inner frame. */
export function vxlanPayload({ vni, ...inner }: InnerUdp & { vni: number }): Buffer {
  const vxlan = Buffer.alloc(8);
  vxlan[0] = 0x08;
  vxlan.writeUIntBE(vni, 4, 3);
  return Buffer.concat([vxlan, udpFrame(inner)]);
}

/** A Geneve payload: version 0, no options, protocol Transparent Ethernet Bridging, `vni`, then the inner frame. */
export function genevePayload({ vni, ...inner }: InnerUdp & { vni: number }): Buffer {
  const geneve = Buffer.alloc(8);
  geneve.writeUInt16BE(0x6558, 2);
  geneve.writeUIntBE(vni, 4, 3);
  return Buffer.concat([geneve, udpFrame(inner)]);
}
