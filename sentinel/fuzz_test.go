package sentinel

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadCommand feeds arbitrary bytes to the command reader: it must
// return commands or an error, never panic, and never produce an argument
// over the limits.
func FuzzReadCommand(f *testing.F) {
	for _, seed := range []string{
		"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n",
		"PING \"a\\x41b\" 'c\\'d'\r\n",
		"*1\r\n$-1\r\n", "*-1\r\n", "*0\r\n", "\r\n", "*3\r\n$1\r\n",
		"SENTINEL get-master-addr-by-name cache\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newReader(bytes.NewReader(data))
		for range 100 {
			args, err := r.readCommand()
			if err != nil {
				var pe protocolError
				if !errors.As(err, &pe) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if len(args) > maxArgs {
				t.Fatalf("%d arguments", len(args))
			}
			for _, a := range args {
				if len(a) > maxBulk+maxInline {
					t.Fatalf("argument of %d bytes", len(a))
				}
			}
		}
	})
}
