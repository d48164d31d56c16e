package sentinel

// globMatch reports whether s matches the Redis glob pattern, with Redis's
// own rules (util.c stringmatchlen): * any run, ? any byte, [abc] a set,
// [^abc] its complement, [a-z] a range (either
// order), \x the byte x literally, inside or outside a set. Node-redis
// subscribes with "[-+]sdown", so sets and ranges matter.
func globMatch(pattern, s string) bool {
	return matchFrom(pattern, s, 0)
}

// maxGlobDepth bounds the recursion on '*' (Redis bounds it too), so a
// pattern of many stars cannot exhaust the stack.
const maxGlobDepth = 1000

func matchFrom(p, s string, depth int) bool {
	if depth > maxGlobDepth {
		return false
	}
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if matchFrom(p[1:], s[i:], depth+1) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			s = s[1:]
			p = p[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			var ok bool
			ok, p = matchSet(p[1:], s[0])
			if !ok {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || p[0] != s[0] {
				return false
			}
			s = s[1:]
			p = p[1:]
		}
	}
	return len(s) == 0
}

// matchSet matches c against the set that p starts (after its '['), and
// returns the pattern after the set's ']'. An unterminated set runs to the
// end of the pattern, as in Redis.
func matchSet(p string, c byte) (bool, string) {
	not := len(p) > 0 && p[0] == '^'
	if not {
		p = p[1:]
	}
	match := false
	for len(p) > 0 && p[0] != ']' {
		switch {
		case p[0] == '\\' && len(p) >= 2:
			if p[1] == c {
				match = true
			}
			p = p[2:]
		case len(p) >= 3 && p[1] == '-':
			lo, hi := p[0], p[2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo <= c && c <= hi {
				match = true
			}
			p = p[3:]
		default:
			if p[0] == c {
				match = true
			}
			p = p[1:]
		}
	}
	if len(p) > 0 {
		p = p[1:] // the ']'
	}
	return match != not, p
}
