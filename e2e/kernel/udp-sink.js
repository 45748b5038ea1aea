// A UDP sink for the kernel lane's tests: `node udp-sink.js HOST PORT` binds,
// prints "ready", and on SIGTERM prints one JSON line {payloads: [...]} with
// every datagram it received (as text), then exits. A minute without SIGTERM
// ends it too, so a failed test never leaves it running.
'use strict';
const dgram = require('node:dgram');

const [host, port] = process.argv.slice(2);
const payloads = [];
const sock = dgram.createSocket('udp4');
sock.on('message', (msg) => payloads.push(msg.toString('utf8')));
sock.on('error', (err) => {
  process.stderr.write(`udp-sink: ${err.message}\n`);
  process.exit(1);
});
const finish = () => {
  process.stdout.write(JSON.stringify({ payloads }) + '\n');
  sock.close();
  process.exit(0);
};
process.on('SIGTERM', finish);
setTimeout(finish, 60_000).unref();
sock.bind(Number(port), host, () => process.stdout.write('ready\n'));
