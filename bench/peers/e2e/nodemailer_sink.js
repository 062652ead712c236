// nodemailer_sink.js: a discard sink on nodemailer's smtp-server (npm), a
// peer of smtpwire-sink --discard in scripts/bench. It reads every message
// to its end and throws it away; STARTTLS is offered when --cert/--key are
// given. Prints "ready PORT" once listening. scripts/bench installs
// smtp-server into build/bench-peers/node_modules and sets NODE_PATH.
//
//   node nodemailer_sink.js --listen 127.0.0.1:PORT [--cert FILE --key FILE]
'use strict';
const fs = require('fs');
const { SMTPServer } = require('smtp-server');

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i]] = process.argv[i + 1];
const [host, port] = (args['--listen'] || '127.0.0.1:0').split(':');

const options = {
  name: 'nodemailer-sink.example',
  banner: 'nodemailer smtp-server sink',
  authOptional: true,
  disabledCommands: ['AUTH'],
  logger: false,
  maxClients: 20000,
  socketTimeout: 60000,
  closeTimeout: 10000,
  size: 2 * 1024 * 1024 * 1024,
  onData(stream, session, callback) {
    stream.on('data', () => {});
    stream.on('end', () => callback(null));
  },
};
if (args['--cert']) {
  options.key = fs.readFileSync(args['--key']);
  options.cert = fs.readFileSync(args['--cert']);
} else {
  options.disabledCommands.push('STARTTLS');
}
const server = new SMTPServer(options);
server.on('error', (err) => { console.error('nodemailer_sink:', err.message); });
server.listen(Number(port), host, () => {
  console.log('ready ' + server.server.address().port);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
