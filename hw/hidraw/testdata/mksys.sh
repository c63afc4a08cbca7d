#!/bin/sh
# mksys.sh rebuilds sys/, a fake sysfs tree with the layout of Linux 6.1
# (/sys/class/hidraw/hidrawN -> ../../devices/.../<hid device>/hidraw/hidrawN),
# for hw/hidraw's table tests. Run it from this directory.
set -eu
rm -rf sys
mkdir -p sys/class/hidraw

# hex writes a report descriptor given as hex bytes.
hex() { for b in $1; do printf "\\$(printf '%03o' "0x$b")"; done; }

FIDO='06 d0 f1 09 01 a1 01 09 20 15 00 26 ff 00 75 08 95 40 81 02 09 21 15 00 26 ff 00 75 08 95 40 91 02 c0'
# Boot keyboard with LEDs and a feature report: the YubiKey OTP interface.
KBD='05 01 09 06 a1 01 05 07 19 e0 29 e7 15 00 25 01 75 01 95 08 81 02 95 01 75 08 81 01 95 05 75 01 05 08 19 01 29 05 91 02 95 01 75 03 91 01 95 06 75 08 15 00 25 65 05 07 19 00 29 65 81 00 09 03 75 08 95 08 b1 02 c0'

# usbdev DIR VID PID MANUFACTURER PRODUCT SERIAL BUSNUM DEVNUM
usbdev() {
	mkdir -p "$1"
	echo "$2" >"$1/idVendor"; echo "$3" >"$1/idProduct"
	[ -n "$4" ] && echo "$4" >"$1/manufacturer"
	[ -n "$5" ] && echo "$5" >"$1/product"
	[ -n "$6" ] && echo "$6" >"$1/serial"
	echo "$7" >"$1/busnum"; echo "$8" >"$1/devnum"
	return 0
}

# hidnode NODE IFDIR IFNUM HIDNAME HID_ID HID_NAME HID_UNIQ DESCRIPTOR-HEX
hidnode() {
	node=$1 ifdir=$2 hid="$2/$4"
	mkdir -p "$hid/hidraw/$node"
	[ -n "$3" ] && echo "$3" >"$ifdir/bInterfaceNumber"
	printf 'DRIVER=hid-generic\nHID_ID=%s\nHID_NAME=%s\nHID_PHYS=usb-0000:00:14.0-2/input0\nHID_UNIQ=%s\nMODALIAS=hid:b0003g0001v00001050p00000407\n' "$5" "$6" "$7" >"$hid/uevent"
	hex "$8" >"$hid/report_descriptor"
	printf 'MAJOR=244\nMINOR=%s\nDEVNAME=%s\n' "${node#hidraw}" "$node" >"$hid/hidraw/$node/uevent"
	ln -s "../../../$4" "$hid/hidraw/$node/device"
	rel=$(echo "$hid/hidraw/$node" | sed 's,^sys/,,')
	ln -s "../../$rel" "sys/class/hidraw/$node"
}

PCI=sys/devices/pci0000:00/0000:00:14.0

# YubiKey 5 NFC (OTP+FIDO+CCID): interface 0 keyboard, interface 1 FIDO. No USB serial.
usbdev $PCI/usb1/1-2 1050 0407 Yubico "YubiKey OTP+FIDO+CCID" "" 1 7
hidnode hidraw0 $PCI/usb1/1-2/1-2:1.0 00 0003:1050:0407.0001 0003:00001050:00000407 "Yubico YubiKey OTP+FIDO+CCID" "" "$KBD"
hidnode hidraw1 $PCI/usb1/1-2/1-2:1.1 01 0003:1050:0407.0002 0003:00001050:00000407 "Yubico YubiKey OTP+FIDO+CCID" "" "$FIDO"

# SoloKeys Solo 1 (firmware 4.1.5): one FIDO interface, a serial number.
usbdev $PCI/usb1/1-3 0483 a2ca SoloKeys "Solo 4.1.5" 2061368A4E4B 1 9
hidnode hidraw2 $PCI/usb1/1-3/1-3:1.0 00 0003:0483:A2CA.0003 0003:00000483:0000A2CA "SoloKeys Solo 4.1.5" 2061368A4E4B "$FIDO"

# Nitrokey 3A NFC: FIDO interface 1 (interface 0 is CCID, no HID). The usage is
# written as one 4-byte item (page in the high half) after a Usage Page of
# another page, and a long item precedes the collection: the parser must see
# through both (synthesized variant of the standard descriptor).
usbdev $PCI/usb2/2-1 20a0 42b2 Nitrokey "Nitrokey 3" 9E3F1E2D 2 3
hidnode hidraw3 $PCI/usb2/2-1/2-1:1.1 01 0003:20A0:42B2.0004 0003:000020A0:000042B2 "Nitrokey Nitrokey 3" "" \
	"05 01 0b 01 00 d0 f1 fe 02 10 aa bb a1 01 09 20 15 00 26 ff 00 75 08 95 40 81 02 09 21 15 00 26 ff 00 75 08 95 40 91 02 c0"

# A device whose descriptor is cut short (a broken or hostile device): ignored.
usbdev $PCI/usb1/1-4 1209 beef "Broken Inc" "Cut short" "" 1 11
hidnode hidraw4 $PCI/usb1/1-4/1-4:1.0 00 0003:1209:BEEF.0005 0003:00001209:0000BEEF "Broken Inc Cut short" "" \
	"06 d0 f1 09 01 a1 01 09 20 15 00 26 ff"

# The software key over uhid: no USB parent, strings from the HID uevent.
hidnode hidraw5 sys/devices/virtual/misc/uhid "" 0003:1209:0001.0006 0003:00001209:00000001 "mfad software key" "mfad-emu-0001" "$FIDO"
