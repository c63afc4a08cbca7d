#!/bin/bash
# contrib/vmtest/run.sh: the VM test of mfad's kernel paths.
#
# Fetches (apt-get download + dpkg -x, cached in .cache/vmtest/) the
# current Debian kernel, busybox-static, fido2-tools and their libraries,
# builds the probe (and mfad, mfactl when they build), packs an initramfs
# with init.sh as /init, boots qemu-system-x86_64 under TCG, and reads the
# VMTEST PASS/FAIL/METRIC lines from the serial console. It exits non-zero
# on a FAIL, on an expected PASS line missing, or on a timeout.
#
# Idempotent: a second run reuses the cache and only rebuilds the Go
# binaries and the initramfs. Needs root for apt-get only when packages
# are missing. Environment: VMTEST_TIMEOUT (seconds, default 300),
# VMTEST_ACCEL (tcg; kvm only where it really works, see
# docs/hardware.md), VMTEST_LOG (serial log path).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=$ROOT/.cache/vmtest
WORK=$CACHE/work
LOG=${VMTEST_LOG:-$CACHE/serial.log}
TIMEOUT=${VMTEST_TIMEOUT:-300}
ACCEL=${VMTEST_ACCEL:-tcg}
GO=${GO:-go}
export PATH=/usr/local/go/bin:$PATH

# The PASS lines init.sh must print.
EXPECT="boot modules gadget_hidraw fido2_token_list fido2_token_info fido2_cred_make fido2_cred_verify
fido2_assert_get fido2_assert_verify hidraw_enumerate native_getinfo native_makecredential native_getassertion
native_getassertion_open_each libfido2_getinfo libfido2_list libfido2_getassertion libfido2_makecredential_rebuilt
usbhid_getinfo_getassertion usbhid_reattach getinfo_native_vs_libfido2 getinfo_native_vs_usbhid
hotplug_remove hidraw_removed_read hotplug_add gadget_removed uhid_hidraw uhid_fido2_token_list
uhid_hidraw_enumerate uhid_native_getinfo uhid_fido2_assert_get uhid_fido2_assert_verify
mfad_native_enroll mfad_native_signin mfad_native_key_check mfad_libfido2_enroll mfad_libfido2_signin mfad_usbhid_enroll mfad_usbhid_signin
mfad_software_key_refused mfad_key_removed mfad_key_added mfad_uhid_enroll mfad_uhid_signin mfad_uhid_key_check
gadget_fido2_agree_list gadget_fido2_agree_getinfo_verdict gadget_fido2_agree_getinfo gadget_fido2_agree_es256
gadget_fido2_agree_eddsa gadget_fido2_agree_resident gadget_fido2_agree_u2f gadget_fido2_agree_hmac_secret gadget_fido2_agree_cred_protect
uhid_fido2_agree_list uhid_fido2_agree_getinfo_verdict uhid_fido2_agree_getinfo uhid_fido2_agree_es256
uhid_fido2_agree_eddsa uhid_fido2_agree_resident uhid_fido2_agree_u2f uhid_fido2_agree_hmac_secret uhid_fido2_agree_cred_protect"

say() { echo "vmtest: $*" >&2; }
T0=$(date +%s.%N)

# 1. Host tools.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx cpio || need+=(busybox-static)
command -v xz >/dev/null || need+=(xz-utils)
dpkg-query -W -f='${Status}' libfido2-dev 2>/dev/null | grep -q 'ok installed' || need+=(libfido2-dev)
command -v gcc >/dev/null || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { say "missing packages: ${need[*]} (run as root or install them)"; exit 1; }
	say "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi

# 2. Debian packages for the guest, cached.
mkdir -p "$CACHE/debs" "$WORK"
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$KPKG" ]; then
	apt-get update -qq
	KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
[ -n "$KPKG" ] || { say "cannot resolve linux-image-amd64"; exit 1; }
KVER=${KPKG#linux-image-}
PKGS="$KPKG busybox-static fido2-tools libfido2-1 libcbor0.8 libudev1 libssl3 zlib1g libc6"
STAMP=$CACHE/root.stamp
if [ "$(cat "$STAMP" 2>/dev/null)" != "$PKGS" ]; then
	say "fetching $PKGS"
	(cd "$CACHE/debs" && rm -f ./*.deb && { apt-get download $PKGS >/dev/null 2>&1 || { apt-get update -qq && apt-get download $PKGS >/dev/null; }; })
	rm -rf "$CACHE/root" && mkdir -p "$CACHE/root"
	for d in "$CACHE"/debs/*.deb; do dpkg -x "$d" "$CACHE/root"; done
	rm -f "$CACHE/vmlinux"
	echo "$PKGS" >"$STAMP"
fi
R=$CACHE/root
VMLINUZ=$R/boot/vmlinuz-$KVER

# The uncompressed kernel boots through PVH, 2-3 s faster than the bzImage.
KERNEL=$VMLINUZ
if [ ! -s "$CACHE/vmlinux" ]; then
	off=$(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "$VMLINUZ" | head -n1 | cut -d: -f1 || true)
	if [ -n "$off" ]; then
		tail -c +$((off + 1)) "$VMLINUZ" | xz -dc 2>/dev/null >"$CACHE/vmlinux.tmp" || true
		if head -c 4 "$CACHE/vmlinux.tmp" | grep -q ELF; then mv "$CACHE/vmlinux.tmp" "$CACHE/vmlinux"; fi
		rm -f "$CACHE/vmlinux.tmp"
	fi
fi
[ -s "$CACHE/vmlinux" ] && KERNEL=$CACHE/vmlinux

# 3. Go binaries.
say "building probe"
(cd "$ROOT" && $GO build -trimpath -o "$WORK/probe" ./contrib/vmtest/probe)
rm -f "$WORK/mfad" "$WORK/mfactl"
(cd "$ROOT" && $GO build -trimpath -o "$WORK/mfad" ./daemon/cmd/mfad 2>/dev/null) || say "bin/mfad does not build: left out"
(cd "$ROOT" && $GO build -trimpath -o "$WORK/mfactl" ./contrib/mfactl 2>/dev/null) || say "mfactl does not build: left out"

# 4. Initramfs.
IR=$WORK/initramfs
rm -rf "$IR" && mkdir -p "$IR"/{bin,usr/bin,lib/modules,lib64,lib/x86_64-linux-gnu,usr/lib/x86_64-linux-gnu,proc,sys,dev,tmp,run,etc}
cp "$R/bin/busybox" "$IR/bin/busybox"
cp "$ROOT/contrib/vmtest/init.sh" "$IR/init" && chmod 755 "$IR/init"
cp "$WORK/probe" "$IR/bin/probe"
for b in mfad mfactl; do [ -x "$WORK/$b" ] && cp "$WORK/$b" "$IR/bin/$b"; done
# Once daemon/cmd/mfad dispatches `mfad emulator` (daemon/emulator linked in),
# the guest runs the key through mfad itself rather than the probe.
if [ -x "$WORK/mfad" ] && grep -aq 'usage: mfad emulator --gadget' "$WORK/mfad"; then
	echo 'EMU="/bin/mfad emulator"' >"$IR/etc/vmtest.env"
fi
for t in fido2-token fido2-cred fido2-assert; do cp "$R/usr/bin/$t" "$IR/usr/bin/"; done
MD=$R/lib/modules/$KVER/kernel
for m in drivers/usb/common/usb-common drivers/usb/core/usbcore drivers/hid/hid drivers/hid/hid-generic \
	drivers/hid/usbhid/usbhid drivers/hid/uhid fs/configfs/configfs drivers/usb/gadget/udc/udc-core \
	drivers/usb/gadget/libcomposite drivers/usb/gadget/function/usb_f_hid drivers/usb/gadget/udc/dummy_hcd; do
	cp "$MD/$m.ko" "$IR/lib/modules/"
done
for l in lib/x86_64-linux-gnu/libc.so.6 lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 lib/x86_64-linux-gnu/libz.so.1 \
	usr/lib/x86_64-linux-gnu/libfido2.so.1 usr/lib/x86_64-linux-gnu/libcbor.so.0.8 usr/lib/x86_64-linux-gnu/libcrypto.so.3 \
	usr/lib/x86_64-linux-gnu/libudev.so.1; do
	src=$R/$l
	[ -e "$src" ] || src=$R/usr/$l
	[ -e "$src" ] || src=$(find "$R" -name "$(basename "$l")*" | head -n1)
	cp -L "$src" "$IR/lib/x86_64-linux-gnu/$(basename "$l")"
done
ln -sf /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$IR/lib64/ld-linux-x86-64.so.2"
(cd "$IR" && find . | /bin/busybox cpio -o -H newc -R 0:0 2>/dev/null | gzip -1 >"$WORK/initramfs.cpio.gz")
T1=$(date +%s.%N)

# 5. Boot.
say "booting $(basename "$KERNEL") ($KVER, $ACCEL)"
ACCEL_ARGS=(-accel tcg -cpu max)
[ "$ACCEL" = kvm ] && ACCEL_ARGS=(-accel kvm -cpu host)
set +e
timeout "$TIMEOUT" qemu-system-x86_64 "${ACCEL_ARGS[@]}" -m 768 -smp 1 \
	-kernel "$KERNEL" -initrd "$WORK/initramfs.cpio.gz" \
	-append 'console=ttyS0 quiet panic=-1 loglevel=3' \
	-nographic -no-reboot -nodefaults -serial stdio -display none </dev/null | tr -d '\r' >"$LOG"
qrc=${PIPESTATUS[0]}
set -e
T2=$(date +%s.%N)

# 6. Results.
grep -E '^(VMTEST|  \[|=== step)' "$LOG" || true
rc=0
if [ "$qrc" = 124 ]; then say "FAIL: timeout after ${TIMEOUT}s"; rc=1; fi
grep -q '^VMTEST DONE' "$LOG" || { say "FAIL: the guest did not finish (see $LOG)"; rc=1; }
if grep -q '^VMTEST FAIL' "$LOG"; then rc=1; fi
for p in $EXPECT; do
	grep -qx "VMTEST PASS $p" "$LOG" || { say "FAIL: missing PASS $p"; rc=1; }
done
echo "VMTEST METRIC host_prepare_s $(awk "BEGIN{print $T1-$T0}") s"
echo "VMTEST METRIC vm_wall_s $(awk "BEGIN{print $T2-$T1}") s"
npass=$(grep -c '^VMTEST PASS' "$LOG" || true)
nfail=$(grep -c '^VMTEST FAIL' "$LOG" || true)
echo "vmtest: $npass passed, $nfail failed"
[ $rc = 0 ] && say "ok" || say "FAILED (serial log: $LOG)"
exit $rc
