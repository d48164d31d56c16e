package policy

import "time"

// Readable rounds d to the precision a person reads in a reason, a log line
// or a table: whole microseconds below 1ms ("412µs"), whole milliseconds
// below 1s ("801ms"), tenths of a second below a minute ("1.3s") and whole
// seconds above ("2m5s"). JSON keeps full precision; only text for people
// goes through Readable.
func Readable(d time.Duration) time.Duration {
	abs := d
	if abs < 0 {
		abs = -abs
	}
	switch {
	case abs < time.Millisecond:
		return d.Round(time.Microsecond)
	case abs < time.Second:
		return d.Round(time.Millisecond)
	case abs < time.Minute:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}
