#!/usr/bin/env bash
# Installs the system packages sealgate needs to build, run and test.
# Idempotent; never upgrades libssl (openssl is not installed by name).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs=(pkg-config libssl-dev libclang-dev postfix swaks libnet-ssleay-perl gnupg gpgsm python3-aiosmtpd
      slapd ldap-utils libbcprov-java default-jre-headless python3-prometheus-client
      dnsmasq-base python3-dkim)
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
