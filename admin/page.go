package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"net/http"
	"time"
)

// pageFiles is the live status page: plain HTML, CSS and JavaScript
// embedded in the binary, so the page needs no CDN and no build step.
//
//go:embed page
var pageFiles embed.FS

// pageHandler serves the status page at / and its assets under /page/.
// The page reads GET /v1/status/stream and needs no token; it offers no
// action of its own (drain and force stay with the token-checked API).
func pageHandler() http.Handler {
	files := http.FileServerFS(pageFiles)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Scripts and styles come from this node only; nothing inline.
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, pageFiles, "page/index.html")
			return
		}
		files.ServeHTTP(w, r)
	})
}

// Stream timing: how often the stream looks for a new status, and how
// often it sends a comment so that idle proxies keep the connection.
const (
	streamPoll      = 100 * time.Millisecond
	streamKeepalive = 15 * time.Second
	// streamWriteTimeout bounds each write to a viewer that stopped
	// reading.
	streamWriteTimeout = 10 * time.Second
)

// statusStream serves GET /v1/status/stream: Server-Sent Events (the
// text/event-stream of the HTML standard), one "status" event carrying the
// /v1/status document, as one line of JSON, at once and then whenever it
// changes. It looks every 100ms, so a new evaluation reaches the page
// within 100ms of the node deciding it. It ends when the client goes away
// or the server shuts down.
func (s *Server) statusStream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	send := func(frame []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(frame); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	var last []byte
	lastSent := time.Time{}
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	for {
		doc := s.statusDoc()
		body, err := json.Marshal(doc)
		if err != nil {
			s.logger.Error("status stream: encode", "error", err)
			return
		}
		switch {
		case !bytes.Equal(body, last):
			frame := make([]byte, 0, len(body)+24)
			frame = append(frame, "event: status\ndata: "...)
			frame = append(append(frame, body...), "\n\n"...)
			if !send(frame) {
				return
			}
			last, lastSent = body, time.Now()
		case time.Since(lastSent) >= streamKeepalive:
			if !send([]byte(": keepalive\n\n")) {
				return
			}
			lastSent = time.Now()
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		if s.shutting.Load() {
			return // let Shutdown finish instead of waiting for viewers
		}
	}
}
