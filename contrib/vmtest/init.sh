#!/bin/busybox sh
# PID 1 of the VM test's guest (contrib/vmtest/run.sh builds it into the
# initramfs as /init). Each step is one function that prints
#   VMTEST PASS <name>  |  VMTEST FAIL <name>: <why>  |  VMTEST METRIC <name> <value> <unit>
# on the serial console; run.sh lists the PASS lines it expects. To add a
# step: write step_<name>, append it to STEPS, add its PASS names to
# EXPECT in run.sh. /bin/mfad and /bin/mfactl are there when run.sh could
# build them (hooks for the daemon's own enroll and sign-in steps).

/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /run && mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /run
exec </dev/console >/dev/console 2>&1
echo 1 >/proc/sys/kernel/printk 2>/dev/null

EMU="/bin/probe emulator"   # `mfad emulator` once bin/mfad dispatches it (run.sh sets MFAD_EMULATOR)
[ -f /etc/vmtest.env ] && . /etc/vmtest.env
CTL=/run/emu.sock
T=/tmp/fido
mkdir -p $T

pass() { echo "VMTEST PASS $1"; }
fail() { n=$1; shift; echo "VMTEST FAIL $n: $*"; }
metric() { echo "VMTEST METRIC $1 $2 $3"; }
# run NAME CMD...: PASS when CMD exits 0, else FAIL with its last output lines.
run() {
	n=$1; shift
	if timeout 60 "$@" >$T/$n.out 2>&1; then pass $n; else fail $n "exit $?: $(tail -n 3 $T/$n.out | tr '\n' ' ')"; fi
	sed "s/^/  [$n] /" $T/$n.out | grep -v VMTEST | head -n 20
	grep '^VMTEST' $T/$n.out
}
# hidraw_node: the software key's node, from sysfs (1209:0001).
hidraw_node() {
	for h in /sys/class/hidraw/hidraw*; do
		grep -qi 'HID_ID=0003:00001209:00000001' $h/device/uevent 2>/dev/null && { echo /dev/${h##*/}; return 0; }
	done
	return 1
}
wait_hidraw() {
	i=0
	while [ $i -lt 100 ]; do hidraw_node && return 0; sleep 0.1; i=$((i+1)); done
	return 1
}

step_boot() {
	metric vm_boot_to_init_s "$(cut -d' ' -f1 /proc/uptime)" s
	pass boot
}

step_modules() {
	M=/lib/modules
	ok=1
	for m in usb-common usbcore hid hid-generic usbhid uhid configfs udc-core libcomposite usb_f_hid dummy_hcd; do
		insmod $M/$m.ko 2>$T/insmod.err || { grep -q 'File exists' $T/insmod.err || { ok=0; fail modules "insmod $m: $(cat $T/insmod.err)"; }; }
	done
	mount -t configfs none /sys/kernel/config || { ok=0; fail modules "mount configfs"; }
	[ $ok = 1 ] && [ -e /sys/class/udc/dummy_udc.0 ] && pass modules
}

step_gadget_start() {
	$EMU --gadget --state $T/emu.state --control $CTL --serial vmtest-0001 >$T/emu-gadget.log 2>&1 &
	EMU_PID=$!
	t0=$(cut -d' ' -f1 /proc/uptime)
	if DEV=$(wait_hidraw); then
		t1=$(cut -d' ' -f1 /proc/uptime)
		metric gadget_enumeration_s "$(awk "BEGIN{print $t1-$t0}")" s
		pass gadget_hidraw
	else
		fail gadget_hidraw "no hidraw node; emulator log: $(tail -n 5 $T/emu-gadget.log | tr '\n' ' ')"
		dmesg | tail -n 20
	fi
}

step_fido2_token() {
	timeout 20 fido2-token -L >$T/L.out 2>&1
	cat $T/L.out
	if grep -q "$DEV: vendor=0x1209, product=0x0001 (mfad mfad software key)" $T/L.out; then pass fido2_token_list; else fail fido2_token_list "$(cat $T/L.out)"; fi
	timeout 20 fido2-token -I $DEV >$T/I.out 2>&1
	grep -E 'aaguid|version' $T/I.out
	if grep -q 'aaguid: 6d6661642d656d752d736f66746b6579' $T/I.out && grep -q 'FIDO_2_0' $T/I.out; then pass fido2_token_info; else fail fido2_token_info "$(head -n 5 $T/I.out | tr '\n' ' ')"; fi
}

step_fido2_cred_assert() {
	# fido2-cred -M input: client data hash, rp id, user name, user id (base64).
	printf 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\npam://vmtest\nalice\nYWxpY2UtaWQ=\n' >$T/cred.in
	run fido2_cred_make fido2-cred -M -i $T/cred.in -o $T/cred.out $DEV
	run fido2_cred_verify fido2-cred -V -i $T/cred.out -o $T/cred.vout
	sed 1d $T/cred.vout >$T/cred.pub # credential id, then the public key in PEM
	# fido2-assert -G input: client data hash, rp id, credential id (line 5 of the credential).
	{ echo 'ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA='; echo 'pam://vmtest'; sed -n 5p $T/cred.out; } >$T/assert.in
	run fido2_assert_get /bin/probe time fido2_assert_process_ms fido2-assert -G -i $T/assert.in -o $T/assert.out $DEV
	run fido2_assert_verify fido2-assert -V -i $T/assert.out $T/cred.pub es256
}

step_hidraw_list() { run hidraw_enumerate /bin/probe list; }

step_drivers() {
	timeout 120 /bin/probe drivers >$T/drivers.out 2>&1
	grep -v '^VMTEST' $T/drivers.out | sed 's/^/  [drivers] /' | head -n 30
	grep '^VMTEST' $T/drivers.out
}

step_hotplug() {
	timeout 60 /bin/probe hotplug --control $CTL >$T/hotplug.out 2>&1
	grep -v '^VMTEST' $T/hotplug.out | sed 's/^/  [hotplug] /' | head -n 20
	grep '^VMTEST' $T/hotplug.out
	DEV=$(wait_hidraw)
}

# crosscheck PREFIX REPORT: libfido2's fido2-token, fido2-cred and
# fido2-assert on the key at $DEV must agree with the battery's verdicts in
# REPORT (its JSON report on the same key), and fido2-token -I with the
# GetInfo the battery saw (contrib/vmtest/probe/crosscheck.go).
crosscheck() {
	timeout 180 /bin/probe time ${1}_fido2_crosscheck_ms /bin/probe crosscheck --prefix $1 --report $2 --dev $DEV >$T/cross-$1.out 2>&1 ||
		grep -q '^VMTEST' $T/cross-$1.out || fail ${1}_fido2_agree "probe crosscheck: $(tail -n 3 $T/cross-$1.out | tr '\n' ' ')"
	grep -v '^VMTEST' $T/cross-$1.out | sed "s/^/  [cross-$1] /" | head -n 40
	grep '^VMTEST' $T/cross-$1.out
}

# mfad_start DRIVER NAME: mfad on its own socket and state, reaching the key
# through DRIVER; sets M to the mfactl command line for it.
mfad_start() {
	# The key is mfad's software key behind a real USB gadget: credentials it
	# makes sign in only while software keys are on ([emulator] enabled).
	printf 'admin_group = "root"\n[keys]\ndriver = "%s"\n[fido]\ntouch_timeout = "20s"\n[emulator]\nenabled = %s\n' "$1" "${3:-true}" >$T/mfad-$2.toml
	/bin/mfad --config $T/mfad-$2.toml --socket /run/mfad-$2.sock --state-dir $T/state-$2 >$T/mfad-$2.log 2>&1 &
	MFAD_PID=$!
	M="/bin/mfactl --socket /run/mfad-$2.sock"
	i=0
	while [ $i -lt 100 ]; do
		$M --json key list 2>/dev/null | grep -q '"aaguid"' && return 0
		sleep 0.1; i=$((i+1))
	done
	echo "mfad ($1) did not see the key: $(tail -n 5 $T/mfad-$2.log | tr '\n' ' ')"
	return 1
}
mfad_stop() { kill $MFAD_PID 2>/dev/null; wait $MFAD_PID 2>/dev/null; }

# step_mfad_drivers: mfad itself, with each driver, enrolls the key on an
# account and signs in with it (the time of a whole `mfactl authenticate
# --key`, process start included, is the METRIC).
step_mfad_drivers() {
	[ -x /bin/mfad ] || { fail mfad_drivers "bin/mfad is not in the image"; return; }
	for d in native libfido2 usbhid; do
		if ! mfad_start $d $d >$T/start-$d.out 2>&1; then fail mfad_${d}_enroll "$(cat $T/start-$d.out)"; continue; fi
		run mfad_${d}_enroll $M device add fido vm-$d --label "vm key"
		run mfad_${d}_signin /bin/probe time mfad_${d}_signin_ms $M authenticate --key vm-$d
		# The conformance battery through mfad, over the kernel's hidraw.
		[ $d = native ] && run mfad_native_key_check /bin/probe time mfad_native_key_check_ms $M key check --all --report json --output $T/check-native.json
		mfad_stop
		[ $d = native ] && crosscheck gadget $T/check-native.json
	done
	# With software keys off, the same key is known by its AAGUID and refused.
	if mfad_start native native false >$T/start-off.out 2>&1; then
		if $M authenticate --key vm-native >$T/off.out 2>&1; then fail mfad_software_key_refused "signed in"
		elif grep -q emulated_key_refused $T/off.out; then pass mfad_software_key_refused
		else fail mfad_software_key_refused "$(cat $T/off.out)"; fi
		mfad_stop
	fi
}

# step_mfad_unplug: unplugging the gadget (the UDC unbound) reaches mfad as
# key_removed on its event stream, and plugging it back as key_added.
step_mfad_unplug() {
	mfad_start native unplug >$T/start-unplug.out 2>&1 || { fail mfad_key_removed "$(cat $T/start-unplug.out)"; return; }
	$M --json events >$T/events.out 2>&1 &
	EV_PID=$!
	sleep 0.5
	$EMU ctl --control $CTL unplug >$T/ctl.out 2>&1
	i=0; while ! grep -q key_removed $T/events.out && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
	if grep -q key_removed $T/events.out; then pass mfad_key_removed; else
		fail mfad_key_removed "events: $(tr '\n' ' ' <$T/events.out)"
		tail -n 15 $T/mfad-unplug.log; cat $T/ctl.out
	fi
	$EMU ctl --control $CTL plug >/dev/null 2>&1
	i=0; while ! grep -q key_added $T/events.out && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
	if grep -q key_added $T/events.out; then pass mfad_key_added; else fail mfad_key_added "events: $(tr '\n' ' ' <$T/events.out)"; fi
	kill $EV_PID 2>/dev/null
	mfad_stop
	DEV=$(wait_hidraw)
}

step_gadget_stop() {
	kill $EMU_PID 2>/dev/null
	i=0; while kill -0 $EMU_PID 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
	if [ ! -e /sys/kernel/config/usb_gadget/mfad ] && ! hidraw_node >/dev/null; then pass gadget_removed; else fail gadget_removed "gadget or hidraw node left: $(ls /sys/kernel/config/usb_gadget)"; fi
}

step_uhid() {
	$EMU --uhid --state $T/emu.state --control $CTL --serial vmtest-uhid >$T/emu-uhid.log 2>&1 &
	EMU_PID=$!
	if ! DEV=$(wait_hidraw); then fail uhid_hidraw "no hidraw node: $(tail -n 5 $T/emu-uhid.log | tr '\n' ' ')"; return; fi
	pass uhid_hidraw
	timeout 20 fido2-token -L >$T/uL.out 2>&1
	if grep -q "$DEV: vendor=0x1209, product=0x0001" $T/uL.out; then pass uhid_fido2_token_list; else fail uhid_fido2_token_list "$(cat $T/uL.out)"; fi
	run uhid_hidraw_enumerate /bin/probe list
	run uhid_native_getinfo /bin/probe info
	# The credential made over the gadget lives in the same state file.
	run uhid_fido2_assert_get fido2-assert -G -i $T/assert.in -o $T/uassert.out $DEV
	run uhid_fido2_assert_verify fido2-assert -V -i $T/uassert.out $T/cred.pub es256
	# mfad over uhid, native driver: the account enrolled over the gadget signs in.
	if mfad_start native uhid >$T/start-uhid.out 2>&1; then
		run mfad_uhid_enroll $M device add fido vm-uhid
		run mfad_uhid_signin $M authenticate --key vm-uhid
		# The battery over uhid. uhid has no flow control in either
		# direction (the kernel drops output reports past 32 queued uhid
		# events, and input reports past 64 unread in a hidraw file), so
		# mfad paces its writes to uhid nodes and the emulator its input
		# reports, as a full-speed USB endpoint would (ctaphid.Pacer).
		# The kernel's count of dropped output reports is the METRIC.
		dmesg -c >/dev/null 2>&1
		run mfad_uhid_key_check /bin/probe time mfad_uhid_key_check_ms $M key check --all --report json --output $T/check-uhid.json
		metric uhid_output_queue_full "$(dmesg | grep -c 'Output queue is full')" reports
		mfad_stop
		crosscheck uhid $T/check-uhid.json
	else
		fail mfad_uhid_enroll "$(cat $T/start-uhid.out)"
	fi
	kill $EMU_PID
}

step_mfad_binaries() {
	# Hook for the daemon's steps: mfad and mfactl are in the image when they build.
	if [ -x /bin/mfad ]; then
		if /bin/mfad --version >$T/v.out 2>&1; then pass mfad_binary; else fail mfad_binary "$(cat $T/v.out)"; fi
	else
		echo "VMTEST SKIP mfad_binary: bin/mfad not built"
	fi
}

STEPS="boot modules gadget_start fido2_token fido2_cred_assert hidraw_list drivers hotplug mfad_drivers mfad_unplug gadget_stop uhid mfad_binaries"
for s in $STEPS; do
	echo "=== step $s"
	step_$s
done
metric vm_uptime_at_end_s "$(cut -d' ' -f1 /proc/uptime)" s
echo "VMTEST DONE"
poweroff -f
