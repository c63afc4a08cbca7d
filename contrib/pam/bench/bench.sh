#!/bin/sh
# One TOTP sign-in through pamtester: pam_mfad against pam_google_authenticator
# and pam_oath (Debian packages), PERF-BASELINE §4's method. Run as root from
# the repository root: builds bin/mfad and bin/pam_mfad.so, then times.
#   contrib/pam/bench/bench.sh [--runs 200] [--reps 5] [--sink] [--only permit,gauth,gauth-reuse,oath,mfad]
#                              [--module-b OTHER/pam_mfad.so]  (a second build, same run)
set -e
cd "$(dirname "$0")/../../.."
out=$(mktemp -d /tmp/mfad-pambench-bin.XXXXXX)
trap 'rm -rf "$out"' EXIT
PATH=/usr/local/go/bin:$PATH go build -o "$out/mfad" ./daemon/cmd/mfad
make -s -C contrib/pam O="$out"
python3 contrib/pam/bench/bench.py --mfad "$out/mfad" --module "$out/pam_mfad.so" "$@"
