#!/usr/bin/env bash
# Build dependencies from Debian's packages: cmake for librdkafka's build
# (rdkafka's cmake-build feature), OpenSSL's headers for its TLS and SASL/SCRAM
# support (rdkafka's ssl feature), libcurl's headers (see below). Skipped when already present.
set -euo pipefail
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
# librdkafka (2.12) with OpenSSL and without curl still includes curl/curl.h
# (an #ifdef on a flag that is always defined, to 0): the header must exist.
# Nothing from libcurl is compiled in or linked.
pkg-config --exists libcurl 2>/dev/null || missing+=(libcurl4-openssl-dev)
# The tracing test's OTLP receiver installs into a Python virtual environment.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing build dependencies: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
