package policy

import (
	"testing"
	"time"
)

func TestReadable(t *testing.T) {
	cases := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{412345 * time.Nanosecond, "412µs"},
		{800701679 * time.Nanosecond, "801ms"},
		{999400 * time.Microsecond, "999ms"},
		{1260 * time.Millisecond, "1.3s"},
		{12349 * time.Millisecond, "12.3s"},
		{125400 * time.Millisecond, "2m5s"},
		{-800701679 * time.Nanosecond, "-801ms"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			if got := Readable(c.in).String(); got != c.want {
				t.Errorf("Readable(%d) = %s, want %s", int64(c.in), got, c.want)
			}
		})
	}
}
