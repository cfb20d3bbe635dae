package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// parseSize reads a byte count such as "1048576", "10MB", "512KiB" or
// "1 GiB". Decimal units (KB, MB, GB, TB) are powers of 1000, binary units
// (KiB, MiB, GiB, TiB) powers of 1024; units are case-insensitive.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	end := 0
	for end < len(t) && t[end] >= '0' && t[end] <= '9' {
		end++
	}
	if end == 0 {
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with a unit such as 10MB or 512KiB", s)
	}
	unit := strings.ToLower(strings.TrimSpace(t[end:]))
	multipliers := map[string]int64{
		"": 1, "b": 1,
		"kb": 1_000, "mb": 1_000_000, "gb": 1_000_000_000, "tb": 1_000_000_000_000,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}
	mult, ok := multipliers[unit]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s)
	}
	n, err := strconv.ParseInt(t[:end], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}
