package probes

import (
	"strconv"
	"strings"
	"sync"
)

// numSlots is the number of Redis Cluster hash slots.
const numSlots = 16384

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the hash
// Redis Cluster uses for key slots (Redis Cluster spec, "Keys distribution
// model").
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// keySlot returns the hash slot of key, honouring a hash tag: when the key
// holds "{...}" with a non-empty body, only the body is hashed.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % numSlots)
}

var (
	slotTagsOnce sync.Once
	slotTags     [numSlots]string
)

// slotTag returns a short hash tag body whose slot is slot, so that a key
// containing "{"+slotTag(slot)+"}" lands in that slot. The table is built
// once (about 170k CRC16s of short strings, a few milliseconds).
func slotTag(slot int) string {
	slotTagsOnce.Do(func() {
		left := numSlots
		for i := 0; left > 0; i++ {
			tag := strconv.FormatInt(int64(i), 36)
			s := crc16(tag) % numSlots
			if slotTags[s] == "" {
				slotTags[s] = tag
				left--
			}
		}
	})
	return slotTags[slot]
}

// spreadSlots returns n slots spread evenly over the slot space, each in
// the middle of its 1/n share.
func spreadSlots(n int) []int {
	if n < 1 {
		n = 1
	}
	if n > numSlots {
		n = numSlots
	}
	out := make([]int, n)
	for i := range out {
		out[i] = (2*i + 1) * numSlots / (2 * n)
	}
	return out
}
