package hidraw

import (
	"errors"
	"fmt"
)

// FIDO usage, CTAP 2.2 §11.2.8.1 (HID report descriptor and device discovery).
const (
	FIDOUsagePage  = 0xF1D0 // FIDO Alliance usage page
	FIDOUsageCTAP  = 0x01   // U2F/CTAP authenticator device
	FIDOReportSize = 64     // input and output reports of a FIDO interface
)

// Limits of the descriptor parser. The kernel refuses descriptors longer than
// HID_MAX_DESCRIPTOR_SIZE (4096 bytes); these bound what a hostile device can
// make the parser do.
const (
	MaxDescriptorSize = 4096
	maxDepth          = 32 // nested collections
	maxPush           = 8  // Push without Pop
	maxCollections    = 64 // top-level collections reported
)

var (
	// ErrDescriptor classes every malformed report descriptor.
	ErrDescriptor = errors.New("hidraw: malformed report descriptor")
)

// Usage is a usage page and usage id pair (HID 1.11 §5.5).
type Usage struct {
	Page uint16
	ID   uint16
}

func (u Usage) String() string { return fmt.Sprintf("%04x:%04x", u.Page, u.ID) }

// Item types and tags, HID 1.11 §6.2.2.4-6.2.2.8.
const (
	typeMain   = 0
	typeGlobal = 1
	typeLocal  = 2

	tagCollection    = 0xA // main
	tagEndCollection = 0xC // main
	tagUsagePage     = 0x0 // global
	tagPush          = 0xA // global
	tagPop           = 0xB // global
	tagUsage         = 0x0 // local

	longItemPrefix = 0xFE // HID 1.11 §6.2.2.3
)

// ParseReportDescriptor returns the usages of the top-level collections of a
// HID report descriptor, in order. It follows the global Usage Page through
// Push and Pop, takes a collection's usage from the first Usage local item
// before it (a 4-byte usage carries its own page), and checks that the
// collections nest properly. Long items are skipped. Errors wrap
// ErrDescriptor: an item running past the end, unbalanced collections, too
// deep nesting or too many pushes, or a descriptor above MaxDescriptorSize.
func ParseReportDescriptor(desc []byte) ([]Usage, error) {
	if len(desc) > MaxDescriptorSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrDescriptor, len(desc))
	}
	var (
		page   uint16
		stack  []uint16 // pushed usage pages
		usages []uint32 // local Usage items since the last main item
		depth  int
		top    []Usage
	)
	for i := 0; i < len(desc); {
		prefix := desc[i]
		if prefix == longItemPrefix {
			if i+3 > len(desc) {
				return nil, fmt.Errorf("%w: truncated long item at %d", ErrDescriptor, i)
			}
			n := int(desc[i+1])
			if i+3+n > len(desc) {
				return nil, fmt.Errorf("%w: truncated long item at %d", ErrDescriptor, i)
			}
			i += 3 + n
			continue
		}
		size := int(prefix & 0x3)
		if size == 3 {
			size = 4
		}
		typ := (prefix >> 2) & 0x3
		tag := prefix >> 4
		if i+1+size > len(desc) {
			return nil, fmt.Errorf("%w: item 0x%02x at %d runs past the end", ErrDescriptor, prefix, i)
		}
		var data uint32
		for j := 0; j < size; j++ {
			data |= uint32(desc[i+1+j]) << (8 * j)
		}
		switch typ {
		case typeMain:
			switch tag {
			case tagCollection:
				if depth == 0 {
					u := Usage{Page: page}
					if len(usages) > 0 {
						u.ID = uint16(usages[0])
						if hi := uint16(usages[0] >> 16); hi != 0 {
							u.Page = hi
						}
					}
					if len(top) < maxCollections {
						top = append(top, u)
					}
				}
				depth++
				if depth > maxDepth {
					return nil, fmt.Errorf("%w: collections nested deeper than %d", ErrDescriptor, maxDepth)
				}
			case tagEndCollection:
				if depth == 0 {
					return nil, fmt.Errorf("%w: End Collection without Collection at %d", ErrDescriptor, i)
				}
				depth--
			}
			usages = usages[:0]
		case typeGlobal:
			switch tag {
			case tagUsagePage:
				page = uint16(data)
			case tagPush:
				if len(stack) >= maxPush {
					return nil, fmt.Errorf("%w: more than %d Push items", ErrDescriptor, maxPush)
				}
				stack = append(stack, page)
			case tagPop:
				if len(stack) == 0 {
					return nil, fmt.Errorf("%w: Pop without Push at %d", ErrDescriptor, i)
				}
				page = stack[len(stack)-1]
				stack = stack[:len(stack)-1]
			}
		case typeLocal:
			if tag == tagUsage && len(usages) < 16 {
				if size <= 2 {
					data |= uint32(page) << 16 // the current page, read now (HID 1.11 §6.2.2.8)
				}
				usages = append(usages, data)
			}
		}
		i += 1 + size
	}
	if depth != 0 {
		return nil, fmt.Errorf("%w: %d collections left open", ErrDescriptor, depth)
	}
	return top, nil
}

// IsFIDO reports whether a report descriptor declares a FIDO interface: a
// top-level collection of usage page 0xF1D0, usage 0x01. A malformed
// descriptor is not one.
func IsFIDO(desc []byte) bool {
	usages, err := ParseReportDescriptor(desc)
	if err != nil {
		return false
	}
	for _, u := range usages {
		if u.Page == FIDOUsagePage && u.ID == FIDOUsageCTAP {
			return true
		}
	}
	return false
}

// FIDOReportDescriptor returns the report descriptor of a FIDO HID interface
// (CTAP 2.2 §11.2.8.1): usage page 0xF1D0, usage 0x01, one 64-byte input
// report (usage 0x20) and one 64-byte output report (usage 0x21), no report
// ids. Real keys (YubiKey 5, SoloKeys, Nitrokey 3) declare exactly these 34
// bytes; the software key's gadget and uhid bridges declare them too.
func FIDOReportDescriptor() []byte {
	return []byte{
		0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance)
		0x09, 0x01, // Usage (CTAPHID)
		0xa1, 0x01, // Collection (Application)
		0x09, 0x20, //   Usage (Input Report Data)
		0x15, 0x00, //   Logical Minimum (0)
		0x26, 0xff, 0x00, //   Logical Maximum (255)
		0x75, 0x08, //   Report Size (8)
		0x95, 0x40, //   Report Count (64)
		0x81, 0x02, //   Input (Data, Var, Abs)
		0x09, 0x21, //   Usage (Output Report Data)
		0x15, 0x00, //   Logical Minimum (0)
		0x26, 0xff, 0x00, //   Logical Maximum (255)
		0x75, 0x08, //   Report Size (8)
		0x95, 0x40, //   Report Count (64)
		0x91, 0x02, //   Output (Data, Var, Abs)
		0xc0, // End Collection
	}
}
