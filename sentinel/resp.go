package sentinel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Input limits. Sentinel commands are a few short words, so the limits are
// far below Redis's (1M arguments, 512 MB bulk strings): a client that
// exceeds them gets a protocol error and is disconnected before the server
// allocates anything for the request.
const (
	// maxArgs is the most arguments one command may have.
	maxArgs = 1024
	// maxBulk is the longest argument, in bytes.
	maxBulk = 64 << 10
	// maxInline is the longest inline command (and header line).
	maxInline = 64 << 10
)

// protocolError is a malformed request: its text is sent as
// "-ERR Protocol error: <text>" and the connection is closed, as Redis
// does.
type protocolError string

func (e protocolError) Error() string { return "Protocol error: " + string(e) }

// reader reads commands: RESP multibulk arrays of bulk strings
// (what clients send) and inline commands (what telnet sends).
type reader struct {
	rd *bufio.Reader
}

func newReader(r io.Reader) *reader {
	return &reader{rd: bufio.NewReaderSize(r, 16<<10)}
}

// buffered reports whether a complete or partial next command is already
// read from the socket (pipelining): replies are flushed only when not.
func (r *reader) buffered() bool { return r.rd.Buffered() > 0 }

// readCommand returns the next command's arguments; an empty request
// (a blank inline line, "*0") returns nil args and no error. Errors are
// io errors (the connection is gone) or a protocolError.
func (r *reader) readCommand() ([]string, error) {
	line, err := r.readLine()
	if err != nil {
		return nil, err
	}
	if len(line) == 0 || line[0] != '*' {
		return splitInline(line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n > maxArgs {
		return nil, protocolError("invalid multibulk length")
	}
	if n <= 0 {
		return nil, nil
	}
	args := make([]string, 0, min(n, 16))
	for range n {
		hdr, err := r.readLine()
		if err != nil {
			return nil, err
		}
		if len(hdr) == 0 || hdr[0] != '$' {
			got := ""
			if len(hdr) > 0 {
				got = hdr[:1]
			}
			return nil, protocolError(fmt.Sprintf("expected '$', got '%s'", got))
		}
		size, err := strconv.Atoi(hdr[1:])
		if err != nil || size < 0 || size > maxBulk {
			return nil, protocolError("invalid bulk length")
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r.rd, buf); err != nil {
			return nil, err
		}
		if buf[size] != '\r' || buf[size+1] != '\n' {
			return nil, protocolError("invalid bulk format")
		}
		args = append(args, string(buf[:size]))
	}
	return args, nil
}

// readLine reads one line without its CRLF (or bare LF, as Redis accepts
// inline), refusing lines over maxInline.
func (r *reader) readLine() (string, error) {
	var sb strings.Builder
	for {
		chunk, err := r.rd.ReadSlice('\n')
		if sb.Len()+len(chunk) > maxInline+2 {
			return "", protocolError("too big inline request")
		}
		sb.Write(chunk)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	line := strings.TrimSuffix(sb.String(), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

// splitInline splits an inline command as Redis's sdssplitargs does:
// blanks separate arguments; "double quotes" take \n \r \t \b \a \\ \"
// and \xHH escapes; 'single quotes' take only \'. A closing quote must be
// followed by a blank or the end of the line.
func splitInline(line string) ([]string, error) {
	var args []string
	i := 0
	for {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		if i >= len(line) {
			return args, nil
		}
		var cur strings.Builder
		inDQ, inSQ := false, false
	arg:
		for ; i < len(line); i++ {
			c := line[i]
			switch {
			case inDQ && c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
				v, _ := strconv.ParseUint(line[i+2:i+4], 16, 8)
				cur.WriteByte(byte(v))
				i += 3
			case inDQ && c == '\\' && i+1 < len(line):
				i++
				cur.WriteByte(unescape(line[i]))
			case inSQ && c == '\\' && i+1 < len(line) && line[i+1] == '\'':
				i++
				cur.WriteByte('\'')
			case inDQ && c == '"', inSQ && c == '\'':
				if i+1 < len(line) && !isBlank(line[i+1]) {
					return nil, protocolError("unbalanced quotes in request")
				}
				inDQ, inSQ = false, false
				i++
				break arg
			case inDQ || inSQ:
				cur.WriteByte(c)
			case isBlank(c):
				break arg
			case c == '"':
				inDQ = true
			case c == '\'':
				inSQ = true
			default:
				cur.WriteByte(c)
			}
		}
		if inDQ || inSQ {
			return nil, protocolError("unbalanced quotes in request")
		}
		args = append(args, cur.String())
		if len(args) > maxArgs {
			return nil, protocolError("invalid multibulk length")
		}
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0 }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}

// writer encodes replies in the connection's protocol: RESP2 until HELLO 3
// switches it to RESP3, where maps, nulls and pushes have their own types.
type writer struct {
	w     *bufio.Writer
	resp3 bool
}

func (w *writer) simple(s string) { w.line('+', s) }

// error writes an error reply; text starts with its code (ERR, NOAUTH...).
func (w *writer) error(text string) { w.line('-', text) }

func (w *writer) int(n int64) { w.line(':', strconv.FormatInt(n, 10)) }

func (w *writer) bulk(s string) {
	w.line('$', strconv.Itoa(len(s)))
	w.w.WriteString(s)
	w.w.WriteString("\r\n")
}

// verbatim is a RESP3 verbatim string of format txt (INFO's reply); a bulk
// string in RESP2.
func (w *writer) verbatim(s string) {
	if !w.resp3 {
		w.bulk(s)
		return
	}
	w.line('=', strconv.Itoa(len(s)+4))
	w.w.WriteString("txt:")
	w.w.WriteString(s)
	w.w.WriteString("\r\n")
}

// nullBulk is a missing string: $-1, or _ in RESP3.
func (w *writer) nullBulk() { w.null("$-1") }

// nullArray is a missing array: *-1, or _ in RESP3.
func (w *writer) nullArray() { w.null("*-1") }

func (w *writer) null(resp2 string) {
	if w.resp3 {
		w.w.WriteString("_\r\n")
		return
	}
	w.w.WriteString(resp2)
	w.w.WriteString("\r\n")
}

func (w *writer) array(n int) { w.line('*', strconv.Itoa(n)) }

// mapLen starts a map of n pairs: %n in RESP3, a flat array of 2n in RESP2.
func (w *writer) mapLen(n int) {
	if w.resp3 {
		w.line('%', strconv.Itoa(n))
		return
	}
	w.array(2 * n)
}

// push starts an out-of-band message (subscribe confirmations, messages):
// >n in RESP3, an array in RESP2.
func (w *writer) push(n int) {
	if w.resp3 {
		w.line('>', strconv.Itoa(n))
		return
	}
	w.array(n)
}

// bulkMap writes a map whose keys and values are all bulk strings, in
// order (kv holds key, value, key, value...).
func (w *writer) bulkMap(kv []string) {
	w.mapLen(len(kv) / 2)
	for _, s := range kv {
		w.bulk(s)
	}
}

func (w *writer) line(prefix byte, s string) {
	w.w.WriteByte(prefix)
	w.w.WriteString(s)
	w.w.WriteString("\r\n")
}
