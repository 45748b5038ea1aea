// Original file: proto/observer.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../../google/protobuf/Timestamp';
import type { Verdict as _weft_observer_v1_Verdict, Verdict__Output as _weft_observer_v1_Verdict__Output } from '../../../weft/observer/v1/Verdict';
import type { TrafficDirection as _weft_observer_v1_TrafficDirection, TrafficDirection__Output as _weft_observer_v1_TrafficDirection__Output } from '../../../weft/observer/v1/TrafficDirection';
import type { Endpoint as _weft_observer_v1_Endpoint, Endpoint__Output as _weft_observer_v1_Endpoint__Output } from '../../../weft/observer/v1/Endpoint';
import type { Service as _weft_observer_v1_Service, Service__Output as _weft_observer_v1_Service__Output } from '../../../weft/observer/v1/Service';
import type { TCPFlags as _weft_observer_v1_TCPFlags, TCPFlags__Output as _weft_observer_v1_TCPFlags__Output } from '../../../weft/observer/v1/TCPFlags';

export interface Flow {
  'time'?: (_google_protobuf_Timestamp | null);
  /**
   * The cluster and node whose datapath saw the packet.
   */
  'cluster'?: (string);
  'node'?: (string);
  'verdict'?: (_weft_observer_v1_Verdict);
  /**
   * The drop reason's name (POLICY_DENIED, UNENCRYPTED_INGRESS, ...) and number; empty, 0 when forwarded.
   */
  'dropReason'?: (string);
  'dropReasonCode'?: (number);
  /**
   * Where the datapath saw it: from-endpoint, to-endpoint, from-overlay, from-underlay.
   */
  'point'?: (string);
  'trafficDirection'?: (_weft_observer_v1_TrafficDirection);
  /**
   * TCP, UDP, ICMP, SCTP, or the IP protocol number.
   */
  'protocol'?: (string);
  'source'?: (_weft_observer_v1_Endpoint | null);
  'destination'?: (_weft_observer_v1_Endpoint | null);
  'destinationService'?: (_weft_observer_v1_Service | null);
  'tcpFlags'?: (_weft_observer_v1_TCPFlags | null);
  'isReply'?: (boolean);
  /**
   * The first packet of a connection (a conntrack entry was created).
   */
  'newConnection'?: (boolean);
  /**
   * Sent to or received from another node through WireGuard or IPsec.
   */
  'encrypted'?: (boolean);
  /**
   * Carried by the overlay (VXLAN or Geneve); on a from-underlay drop the addresses are the tunnel
   * packet's own, not those of the pods it carried.
   */
  'tunneled'?: (boolean);
  /**
   * An ICMP error admitted because it quotes a tracked connection of the endpoint.
   */
  'related'?: (boolean);
  /**
   * The rule that decided it, when one did: "<kind>/<namespace>/<name>#<direction>#<index>"
   * (WeftNetworkPolicy/shop/db#ingress#0).
   */
  'policy'?: (string);
  'length'?: (number);
}

export interface Flow__Output {
  'time': (_google_protobuf_Timestamp__Output | null);
  /**
   * The cluster and node whose datapath saw the packet.
   */
  'cluster': (string);
  'node': (string);
  'verdict': (_weft_observer_v1_Verdict__Output);
  /**
   * The drop reason's name (POLICY_DENIED, UNENCRYPTED_INGRESS, ...) and number; empty, 0 when forwarded.
   */
  'dropReason': (string);
  'dropReasonCode': (number);
  /**
   * Where the datapath saw it: from-endpoint, to-endpoint, from-overlay, from-underlay.
   */
  'point': (string);
  'trafficDirection': (_weft_observer_v1_TrafficDirection__Output);
  /**
   * TCP, UDP, ICMP, SCTP, or the IP protocol number.
   */
  'protocol': (string);
  'source': (_weft_observer_v1_Endpoint__Output | null);
  'destination': (_weft_observer_v1_Endpoint__Output | null);
  'destinationService': (_weft_observer_v1_Service__Output | null);
  'tcpFlags': (_weft_observer_v1_TCPFlags__Output | null);
  'isReply': (boolean);
  /**
   * The first packet of a connection (a conntrack entry was created).
   */
  'newConnection': (boolean);
  /**
   * Sent to or received from another node through WireGuard or IPsec.
   */
  'encrypted': (boolean);
  /**
   * Carried by the overlay (VXLAN or Geneve); on a from-underlay drop the addresses are the tunnel
   * packet's own, not those of the pods it carried.
   */
  'tunneled': (boolean);
  /**
   * An ICMP error admitted because it quotes a tracked connection of the endpoint.
   */
  'related': (boolean);
  /**
   * The rule that decided it, when one did: "<kind>/<namespace>/<name>#<direction>#<index>"
   * (WeftNetworkPolicy/shop/db#ingress#0).
   */
  'policy': (string);
  'length': (number);
}
