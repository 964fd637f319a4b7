#!/usr/bin/env bash
# Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.
# Inputs are real: SMTP dialogues and MIME headers written by hand after
# what clients send, and keys, certificates, key stores and encrypted
# messages made by gpg, openssl and keytool (BouncyCastle) on the spot.
# Every key made here is a throw-away test key; no private key is written
# to the corpora. Run once; the output is committed.
set -euo pipefail
cd "$(dirname "$0")"
C=corpus
BCPROV=/usr/share/java/bcprov.jar
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p $C/{smtp_session,smtp_decode,mime_header,encryption_detect,key_formats,key_parse}

# ---------------------------------------------------------------- SMTP
# smtp_session: byte 0 = listener (0 bare LF normalized, 1 refused).
dialogue() { printf '%b' "$2" > "$C/smtp_session/$1"; }
dialogue plain '\x00EHLO client.example\r\nMAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: hi\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n'
dialogue pipelined '\x00EHLO c\r\nMAIL FROM:<> SMTPUTF8\r\nRCPT TO:<postmaster>\r\nRCPT TO:<"quoted local"@example.net>\r\nRCPT TO:<refuse@example.net>\r\nDATA\r\n'
dialogue two_messages '\x01HELO c\r\nMAIL FROM:<@relay.example:a@example.org>\r\nRCPT TO:<b@[192.0.2.1]>\r\nDATA\r\nx\r\n.\r\nRSET\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.net>\r\nDATA\r\nbare\nlf\r\n.\r\nNOOP\r\nQUIT\r\n'
dialogue errors '\x00MAIL FROM:<a@b>\r\nEHLO c\r\nRCPT TO:<x@y>\r\nMAIL FROM:<"v@m> ORCPT=rfc822;x"@open.example>\r\nVRFY x\r\nHELP\r\nBDAT 10 LAST\r\nSTARTTLS\r\nAUTH PLAIN AGFhAGI=\r\nAUTH LOGIN\r\n*\r\nXYZZY\r\n'
dialogue smuggling '\x00EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\na\n.\nMAIL FROM:<x@y.example>\r\n.\r\n'

# smtp_decode: byte 0 = mode (bit 7 path reader; else bit 0 bare LF
# refused, bits 1-2 line limit, bits 3-4 size limit), byte 1 = chunking.
decode() { printf '%b' "$2" > "$C/smtp_decode/$1"; }
decode data '\x1c\x05Subject: x\r\n\r\nhello\r\n..stuffed\r\n.\r\nQUIT\r\n'
decode data_bare_lf '\x1d\x00a\nb\r\n.\nc\r\n.\r\n'
decode data_long_line '\x02\x03short\r\nthis line is longer than sixteen\r\n.\r\n'
decode data_nul '\x14\x01a\x00b\r\n.\r\n'
decode path_mail '\x80\x00MAIL FROM:<a.b@example.org> SIZE=10\r\n'
decode path_rcpt '\x80\x00RCPT TO:<"a \\"b\\""@example.org>\r\n'
decode path_route '\x80\x00RCPT TO:<@x.example,@y.example:u@[IPv6:2001:db8::1]>\r\n'
decode path_postmaster '\x80\x00rcpt to:<PostMaster>\r\n'

# ---------------------------------------------------------------- MIME
mime() { printf '%b' "$2" > "$C/mime_header/$1"; }
mime simple 'From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset="utf-8"\r\n\r\nbody\r\n'
mime rfc2231 'Content-Type: application/x-stuff;\r\n title*0*=us-ascii\x27en\x27This%20is%20even%20more%20;\r\n title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n title*2="isn\x27t it!"\r\nContent-Disposition: attachment; filename*=UTF-8\x27\x27na%C3%AFve.txt\r\n\r\nx\r\n'
mime folded 'Subject: a\r\n  folded\r\n\tline\r\nDKIM-Signature: v=1; a=rsa-sha256;\r\n b=abc\r\nContent-Type: multipart/mixed; (comment) boundary="=_b (x)";\r\n\tcharset=us-ascii\r\n\r\n--=_b (x)\r\nContent-Type: text/plain\r\n\r\npart\r\n--=_b (x)--\r\n'
mime lf_only 'From: a@b\nContent-Type: text/plain;\n  format=flowed\n\nbody\n'
mime no_separator 'Subject: only headers\r\nX-Y: z'
mime garbage_line 'Subject: x\r\nnot a header line\r\nbody\r\n'

# ---------------------------------------------------------------- keys
export GNUPGHOME=$W/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg -q --batch --pinentry-mode loopback --passphrase '' \
    --quick-gen-key 'Alice <alice@example.org>' future-default default never
gpg -q --batch --pinentry-mode loopback --passphrase '' \
    --quick-gen-key 'Bob <bob@example.org>' rsa2048 default never
bob=$(gpg --batch --with-colons --list-keys bob@example.org | awk -F: '/^fpr/ {print $10; exit}')
gpg -q --batch --pinentry-mode loopback --passphrase '' --quick-add-key "$bob" rsa2048 encr never
gpg -q --batch --armor --export alice@example.org > $W/alice.asc
gpg -q --batch --export bob@example.org > $W/bob.gpg
cp "$GNUPGHOME/pubring.kbx" $C/key_formats/pubring.kbx

openssl req -x509 -newkey rsa:2048 -nodes -keyout $W/carol.key -subj '/CN=Carol/emailAddress=carol@example.org' \
    -addext 'subjectAltName=email:carol@example.org' -addext 'keyUsage=keyEncipherment,digitalSignature' \
    -days 3650 -out $W/carol.pem 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $W/dave.key -subj '/CN=Dave' \
    -addext 'subjectAltName=email:dave@example.org' -days 3650 -out $W/dave.pem 2>/dev/null
openssl x509 -in $W/carol.pem -outform DER -out $W/carol.der
# gpgsm shares the keybox: one with an X.509 blob next to the OpenPGP ones.
gpgsm -q --batch --import $W/carol.pem 2>/dev/null
cp "$GNUPGHOME/pubring.kbx" $C/key_formats/pubring_with_x509.kbx
openssl crl2pkcs7 -nocrl -certfile $W/carol.pem -certfile $W/dave.pem -outform DER -out $W/both.p7b

for v in 1 2; do
    opt=(); [ $v = 1 ] && opt=(-J-Dorg.bouncycastle.bks.enable_v1=true)
    type=BKS; [ $v = 1 ] && type=BKS-V1
    for who in carol dave; do
        keytool "${opt[@]}" -importcert -alias $who -file $W/$who.pem -storetype $type \
            -providerclass org.bouncycastle.jce.provider.BouncyCastleProvider -providerpath $BCPROV \
            -storepass changeit -noprompt -keystore $W/certs-v$v.bks >/dev/null 2>&1
    done
    cp $W/certs-v$v.bks $C/key_formats/certs-v$v.bks
done

# key_parse: byte 0 = entry point (0 parse_any, 1 parse_pgp, 2 parse_x509).
with() { { printf "\\x$1"; cat "$2"; } > "$C/key_parse/$3"; }
with 00 $W/alice.asc any_armored_pgp
with 01 $W/bob.gpg pgp_binary
with 00 $C/key_formats/pubring.kbx any_keybox
with 02 $W/carol.pem x509_pem
with 00 $W/carol.der any_der
with 02 $W/both.p7b x509_p7b
with 00 $C/key_formats/certs-v2.bks any_bks
cat $W/alice.asc $W/carol.pem > $W/mixed
with 00 $W/mixed any_two_blocks

# ---------------------------------------------------------------- encrypted
# encryption_detect: byte 0 = wrapping (0 whole message, 1 pkcs7-mime body,
# 2 text/plain body, 3 PGP/MIME payload).
E=$C/encryption_detect
printf 'secret text\r\n' > $W/msg
gpg -q --batch --trust-model always --armor -r alice@example.org -r bob@example.org --encrypt < $W/msg > $W/enc.asc
gpg -q --batch --armor --local-user alice@example.org --sign < $W/msg > $W/signed.asc
gpg -q --batch --armor --symmetric --pinentry-mode loopback --passphrase pw < $W/msg > $W/sym.asc
openssl cms -encrypt -binary -aes256 -in $W/msg -outform DER -out $W/env.der $W/carol.pem
openssl cms -encrypt -binary -aes256 -keyid -in $W/msg -outform DER -out $W/env_ski.der $W/carol.pem $W/dave.pem
openssl cms -sign -binary -nodetach -in $W/msg -signer $W/carol.pem -inkey $W/carol.key -outform DER -out $W/signed.der
openssl cms -encrypt -binary -aes-256-gcm -in $W/msg -outform DER -out $W/authenv.der $W/carol.pem 2>/dev/null || true
{ printf '\x02'; cat $W/enc.asc; } > $E/inline_encrypted
{ printf '\x02'; cat $W/signed.asc; } > $E/inline_signed
{ printf '\x03'; cat $W/enc.asc; } > $E/pgp_mime
{ printf '\x03'; cat $W/sym.asc; } > $E/pgp_mime_symmetric
{ printf '\x01'; cat $W/env.der; } > $E/cms_enveloped
{ printf '\x01'; cat $W/env_ski.der; } > $E/cms_enveloped_ski
{ printf '\x01'; cat $W/signed.der; } > $E/cms_signed
[ -s $W/authenv.der ] && { printf '\x01'; cat $W/authenv.der; } > $E/cms_auth_enveloped
{ printf '\x00Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n'
  base64 -w 76 $W/env.der | sed 's/$/\r/'; } > $E/smime_message
{ printf '\x00From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/encrypted;\r\n protocol="application/pgp-encrypted"; boundary="XX"\r\n\r\nThis is an OpenPGP/MIME encrypted message\r\n--XX\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--XX\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
  sed 's/$/\r/' $W/enc.asc; printf '\r\n--XX--\r\n'; } > $E/pgp_mime_message
du -sh $C
