// A foreign DTLS 1.2 PSK client for dgram's interop tests, on node-dtls-client (a DTLS implementation of its own
// in JavaScript: neither wolfSSL nor OpenSSL).
//
//   node psk-echo-client.mjs HOST PORT IDENTITY HEXKEY CIPHER MESSAGE [TIMEOUT_MS]
//
// CIPHER is one of node-dtls-client's names, e.g. TLS_PSK_WITH_AES_128_CCM_8 or TLS_PSK_WITH_AES_128_GCM_SHA256.
// Connects, sends MESSAGE once in one record, and prints the first record that comes back, verbatim, as
// `echo: <text>` and a newline on stdout (one line when the peer echoes MESSAGE), then exits 0. Any failure (bad arguments, alert, handshake timeout, no reply) is one
// line on stderr naming the cause, and exit 1. TIMEOUT_MS (default 10000) bounds the whole run: node-dtls-client
// does not retransmit, so a lost datagram would otherwise leave the handshake waiting on its own timer only.
import { dtls } from "node-dtls-client";

const usage = "usage: psk-echo-client.mjs HOST PORT IDENTITY HEXKEY CIPHER MESSAGE [TIMEOUT_MS]";

function fail(cause) {
  process.stderr.write(`psk-echo-client: ${cause}\n`);
  process.exit(1);
}

// An exception thrown inside the library's UDP handlers (a record it cannot parse) must still end in one line.
process.on("uncaughtException", (err) => fail(`error: ${err && err.message ? err.message : err}`));

const args = process.argv.slice(2);
if (args.length < 6 || args.length > 7) fail(usage);
const [host, portText, identity, hexKey, cipher, message, timeoutText = "10000"] = args;
const port = Number(portText);
const timeoutMs = Number(timeoutText);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`bad PORT '${portText}' (${usage})`);
if (!/^([0-9a-fA-F]{2})+$/.test(hexKey)) fail(`bad HEXKEY '${hexKey}': an even number of hex digits`);
// node-dtls-client's cipher suites (README, 2.0.3); an unknown name would fail deep inside it with a TypeError.
const ciphers = [
  "TLS_PSK_WITH_3DES_EDE_CBC_SHA", "TLS_PSK_WITH_AES_128_CBC_SHA", "TLS_PSK_WITH_AES_256_CBC_SHA",
  "TLS_PSK_WITH_AES_128_CBC_SHA256", "TLS_PSK_WITH_AES_256_CBC_SHA384", "TLS_PSK_WITH_AES_128_GCM_SHA256",
  "TLS_PSK_WITH_AES_256_GCM_SHA384", "TLS_PSK_WITH_AES_128_CCM", "TLS_PSK_WITH_AES_256_CCM",
  "TLS_PSK_WITH_AES_128_CCM_8", "TLS_PSK_WITH_AES_256_CCM_8",
];
if (!ciphers.includes(cipher)) fail(`unknown CIPHER '${cipher}': one of ${ciphers.join(" ")}`);
if (!Number.isInteger(timeoutMs) || timeoutMs < 100) fail(`bad TIMEOUT_MS '${timeoutText}': at least 100`);

let connected = false;
let echoed = false;
// The hard bound, whatever the library does or does not do.
const hardTimer = setTimeout(
  () => fail(`timeout: ${connected ? "no echo" : "no handshake"} within ${timeoutMs} ms`), timeoutMs);

let socket;
try {
  socket = dtls.createSocket({
    type: "udp4",
    address: host,
    port,
    // A Buffer, so that the key is the bytes of HEXKEY (a string would be taken as ASCII).
    psk: { [identity]: Buffer.from(hexKey, "hex") },
    ciphers: [cipher],
    // The library's own handshake timer (armed after ours, so ours names the timeout first).
    timeout: timeoutMs,
  });
} catch (err) {
  fail(`error: ${err.message}`);
}

socket
  .on("connected", () => {
    connected = true;
    socket.send(Buffer.from(message, "utf8"));
  })
  .on("message", (data) => {
    if (echoed) return;
    echoed = true;
    clearTimeout(hardTimer);
    process.stdout.write(`echo: ${Buffer.from(data).toString("utf8")}\n`);
    // close() sends close_notify, then closes the UDP socket; exit even if its callback never comes.
    setTimeout(() => process.exit(0), 500).unref();
    socket.close(() => process.exit(0));
  })
  .on("error", (err) => fail(`error: ${err && err.message ? err.message : err}`))
  .on("close", () => echoed || fail(connected ? "closed by the peer before any echo" : "closed during the handshake"));
