// Decrypts an OpenPGP message with OpenPGP.js 6 (RFC 9580), independent of
// sealgate's sequoia: the reader of v6 keys and SEIPDv2 in the tests.
//
// usage: node openpgpjs.cjs SECRET_KEY.asc MESSAGE.asc
// Prints one JSON line: {"seipd": 1|2, "aead": name|null, "pkesk": [versions],
// "data": base64 of the literal data}. Exits 1 with the error on stderr.
const fs = require("fs");
const openpgp = require("openpgp");

async function main() {
  const [keyPath, messagePath] = process.argv.slice(2);
  const key = await openpgp.readPrivateKey({ armoredKey: fs.readFileSync(keyPath, "utf8") });
  const message = await openpgp.readMessage({ armoredMessage: fs.readFileSync(messagePath, "utf8") });
  let seipd = null;
  let aead = null;
  const pkesk = [];
  for (const p of message.packets) {
    const tag = p.constructor.tag;
    if (tag === openpgp.enums.packet.publicKeyEncryptedSessionKey) pkesk.push(p.version);
    if (tag === openpgp.enums.packet.symEncryptedIntegrityProtectedData) {
      seipd = p.version;
      if (p.version === 2) aead = openpgp.enums.read(openpgp.enums.aead, p.aeadAlgorithm);
    }
  }
  const { data } = await openpgp.decrypt({ message, decryptionKeys: key, format: "binary" });
  console.log(JSON.stringify({ seipd, aead, pkesk, data: Buffer.from(data).toString("base64") }));
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
