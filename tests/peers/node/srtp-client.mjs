// A foreign DTLS 1.2 client with DTLS-SRTP for dgram's interop tests, on werift-dtls (the DTLS of werift, a
// WebRTC stack in TypeScript: neither wolfSSL nor OpenSSL).
//
//   node srtp-client.mjs HOST PORT PROFILE MESSAGE [TIMEOUT_MS]
//
// PROFILE is the SRTP protection profile to offer: SRTP_AES128_CM_SHA1_80 or SRTP_AEAD_AES_128_GCM. Connects,
// then prints on stdout, one line each: `srtp-profile: <name>` (the one negotiated), `srtp-keys: <hex>` (the
// keying material RFC 5764 4.2 exports for it: client key, server key, client salt, server salt), `exporter:
// <hex>` (32 bytes for the label "EXPERIMENTAL dgram interop", RFC 5705, no context), then sends MESSAGE once
// and prints the first record that comes back as `echo: <text>`, and exits 0. Any failure is one line on
// stderr and exit 1. (One message only: werift numbers its first epoch-1 record after its epoch-0 ones and
// then starts again at 1, so a later record of its repeats a sequence number and is rightly dropped as a replay.)
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { DtlsClient } = require("werift-dtls/lib/dtls/src/index.js");
const { UdpTransport } = require("werift-dtls/lib/common/src/transport.js");

const usage = "usage: srtp-client.mjs HOST PORT PROFILE MESSAGE [TIMEOUT_MS]";
function fail(cause) {
  process.stderr.write(`srtp-client: ${cause}\n`);
  process.exit(1);
}
process.on("uncaughtException", (err) => fail(`error: ${err && err.message ? err.message : err}`));
process.on("unhandledRejection", (err) => fail(`error: ${err && err.message ? err.message : err}`));

const args = process.argv.slice(2);
if (args.length < 4 || args.length > 5) fail(usage);
const [host, portText, profileName, message, timeoutText = "10000"] = args;
const port = Number(portText);
const timeoutMs = Number(timeoutText);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`bad PORT '${portText}' (${usage})`);
if (!Number.isInteger(timeoutMs) || timeoutMs < 100) fail(`bad TIMEOUT_MS '${timeoutText}': at least 100`);
// werift's profiles (RFC 5764 and RFC 7714 numbers), with the key and salt lengths of each.
const profiles = {
  SRTP_AES128_CM_SHA1_80: { id: 1, key: 16, salt: 14 },
  SRTP_AEAD_AES_128_GCM: { id: 7, key: 16, salt: 12 },
};
const profile = profiles[profileName];
if (!profile) fail(`unknown PROFILE '${profileName}': one of ${Object.keys(profiles).join(" ")}`);
setTimeout(() => fail(`timeout: nothing complete within ${timeoutMs} ms`), timeoutMs);

const transport = await UdpTransport.init("udp4");
transport.rinfo = { address: host, port };
const client = new DtlsClient({ transport, srtpProfiles: [profile.id] });
client.onData.subscribe((data) => {
  process.stdout.write(`echo: ${data.toString()}\n`);
  client.close();
  process.exit(0);
});
client.onError.subscribe((err) => fail(`error: ${err && err.message ? err.message : err}`));
await client.connect();
const negotiated = client.srtp.srtpProfile;
const name = Object.keys(profiles).find((key) => profiles[key].id === negotiated);
if (!name) fail(`the server chose no SRTP profile we offered (got ${negotiated})`);
const keys = client.exportKeyingMaterial("EXTRACTOR-dtls_srtp", 2 * (profiles[name].key + profiles[name].salt));
process.stdout.write(`srtp-profile: ${name}\n`);
process.stdout.write(`srtp-keys: ${Buffer.from(keys).toString("hex")}\n`);
process.stdout.write(`exporter: ${Buffer.from(client.exportKeyingMaterial("EXPERIMENTAL dgram interop", 32)).toString("hex")}\n`);
await client.send(Buffer.from(message));
