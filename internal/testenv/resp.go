package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ReplyError is an error reply from the server (a RESP "-" line), such as
// "LOADING Redis is loading the dataset in memory".
type ReplyError string

// Error returns the reply text.
func (e ReplyError) Error() string { return string(e) }

// IsReplyError reports whether err is an error reply from the server, as
// opposed to a network error.
func IsReplyError(err error) bool {
	var re ReplyError
	return errors.As(err, &re)
}

// Do sends one command on a fresh connection (authenticating first when the
// server has a password) and returns the reply: string for simple and bulk
// strings, int64 for integers, nil for a null, []any for arrays (an error
// element is a ReplyError value), and a ReplyError for an error reply.
// It bounds the exchange by 5s.
func (r *Redis) Do(args ...string) (any, error) {
	return r.DoTimeout(5*time.Second, args...)
}

// DoTimeout is Do with the whole exchange (dial, AUTH, command) bounded by
// timeout.
func (r *Redis) DoTimeout(timeout time.Duration, args ...string) (any, error) {
	conn, err := net.DialTimeout("tcp", r.Addr(), timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(conn)
	if r.opts.password != "" {
		if _, err := roundTrip(conn, br, "AUTH", r.opts.password); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	return roundTrip(conn, br, args...)
}

func roundTrip(w io.Writer, br *bufio.Reader, args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return nil, err
	}
	return readReply(br)
}

func readReply(br *bufio.Reader) (any, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, ReplyError(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			v, err := readReply(br)
			switch {
			case IsReplyError(err):
				out[i] = err
			case err != nil:
				return nil, err
			default:
				out[i] = v
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unsupported reply type %q", line[0])
	}
}
