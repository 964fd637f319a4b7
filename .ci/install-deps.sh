#!/usr/bin/env bash
# Installs the system packages sealgate needs to build, run and test.
# Idempotent; never upgrades libssl (openssl is not installed by name).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs=(pkg-config libssl-dev libclang-dev postfix swaks libnet-ssleay-perl gnupg gpgsm python3-aiosmtpd
      slapd ldap-utils libbcprov-java default-jre-headless python3-prometheus-client
      dnsmasq-base python3-dkim python3-nacl python3-dnspython python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# OpenPGP.js 6 (RFC 9580), the independent reader of sealgate's v6 /
# SEIPDv2 output in the tests (Debian's gpg 2.2 cannot read it). Into its
# own directory, once; the tests find it through SEALGATE_OPENPGPJS.
OPENPGPJS_DIR=/usr/local/lib/sealgate-test/openpgpjs
if [ ! -f "$OPENPGPJS_DIR/node_modules/openpgp/package.json" ]; then
  if ! command -v npm >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  $SUDO mkdir -p "$OPENPGPJS_DIR"
  (cd "$OPENPGPJS_DIR" && $SUDO npm install --no-audit --no-fund --silent openpgp@6.3.2)
fi
# schemathesis (PyPI), which checks the admin API against its OpenAPI
# document in the tests: in its own virtual environment, once.
SCHEMATHESIS_DIR=/usr/local/lib/sealgate-test/schemathesis
if [ ! -x "$SCHEMATHESIS_DIR/bin/schemathesis" ]; then
  $SUDO rm -rf "$SCHEMATHESIS_DIR"
  $SUDO /usr/bin/python3 -m venv "$SCHEMATHESIS_DIR"
  $SUDO "$SCHEMATHESIS_DIR/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi
