// Original file: proto/observer.proto


export interface TCPFlags {
  'FIN'?: (boolean);
  'SYN'?: (boolean);
  'RST'?: (boolean);
  'PSH'?: (boolean);
  'ACK'?: (boolean);
  'URG'?: (boolean);
  'ECE'?: (boolean);
  'CWR'?: (boolean);
}

export interface TCPFlags__Output {
  'FIN': (boolean);
  'SYN': (boolean);
  'RST': (boolean);
  'PSH': (boolean);
  'ACK': (boolean);
  'URG': (boolean);
  'ECE': (boolean);
  'CWR': (boolean);
}
