package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStatusPage opens the demo node's status page in headless Chromium,
// checks that the rendered page shows the members and answers, fails a
// member and checks that the page shows the failover within 2s of the node
// deciding it, without a reload. It saves a screenshot under the test's
// temp folder (and to $AAGTM_SCREENSHOT when set: that is how
// docs/status-page.png is made).
func TestStatusPage(t *testing.T) {
	requireTool(t, "chromium", "chromium")
	requireTool(t, "redis-server", "redis-server")
	p, stdin, _, adminPort, _ := startDemo(t, "redis-server")
	adminAddr := fmt.Sprintf("127.0.0.1:%d", adminPort)
	pageURL := "http://" + adminAddr + "/"
	waitFor(t, 20*time.Second, "the demo to print the status page URL", func() bool {
		return strings.Contains(p.out.String(), pageURL)
	})
	waitDemoUp(t, adminAddr)

	b := startBrowser(t)
	page := b.open(t, pageURL)
	members := `[...document.querySelectorAll("#members tr[data-member]")].map(r => r.dataset.member + "=" + r.dataset.verdict).join(" ")`
	waitFor(t, 10*time.Second, "the page to show three members up", func() bool {
		return page.evalString(t, members) == "cache-use=up cache-euw=up cache-aps=up"
	})
	answers := `[...document.querySelectorAll("#answers tr[data-region]")].map(r => r.dataset.region + "=" + r.dataset.members).join(" ")`
	if got, want := page.evalString(t, answers), "ap-south=cache-aps eu-west=cache-euw us-east=cache-use"; got != want {
		t.Fatalf("page answers = %q, want %q", got, want)
	}
	page.evalString(t, `window.aagtmNotReloaded = "yes"`)

	if _, err := io.WriteString(stdin, "fail cache-use\n"); err != nil {
		t.Fatal(err)
	}
	shown := `(() => {
		const a = document.querySelector('#answers tr[data-region="us-east"]');
		const m = document.querySelector('#members tr[data-member="cache-use"]');
		const e = document.querySelector('#events li[data-kind="failover"][data-region="us-east"]');
		return String(!!(a && a.dataset.members === "cache-euw" && m && m.dataset.verdict === "down" && e));
	})()`
	waitFor(t, 10*time.Second, "the page to show the us-east failover", func() bool {
		return page.evalString(t, shown) == "true"
	})
	seen := time.Now()
	st, err := status(adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	var decided time.Time
	for _, e := range st.Events {
		if e.Kind == "failover" && e.Region == "us-east" {
			decided = e.At
		}
	}
	if decided.IsZero() {
		t.Fatalf("the node lists no us-east failover:\n%s", statusText(st))
	}
	delay := seen.Sub(decided)
	t.Logf("page showed the failover %v after the node decided it", delay.Round(time.Millisecond))
	if delay > 2*time.Second {
		t.Errorf("page showed the failover %v after the node decided it, want within 2s", delay)
	}
	if got := page.evalString(t, `String(window.aagtmNotReloaded)`); got != "yes" {
		t.Errorf("the page reloaded (marker = %q): updates must arrive by push", got)
	}
	for _, text := range []string{"DOWN", "failover", "detected in", "RPO estimate"} {
		if !strings.Contains(page.evalString(t, `document.body.innerText`), text) {
			t.Errorf("page text lacks %q", text)
		}
	}

	png := page.screenshot(t)
	path := filepath.Join(t.TempDir(), "status-page.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	if out := os.Getenv("AAGTM_SCREENSHOT"); out != "" {
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", out)
	}
}

// browser is headless Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: NUL-terminated JSON on fds 3 and 4), which
// needs no WebSocket client.
type browser struct {
	cmd  *exec.Cmd
	toCh io.WriteCloser

	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpReply
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// cdpPage is one tab of the browser, addressed by its session.
type cdpPage struct {
	b       *browser
	session string
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	toR, toW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromR, fromW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--headless", "--remote-debugging-pipe", "--user-data-dir=" + t.TempDir(),
		"--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1000", "about:blank"}
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox") // Chromium refuses to run its sandbox as root
	}
	cmd := exec.Command("chromium", args...)
	cmd.ExtraFiles = []*os.File{toR, fromW} // fd 3: commands in, fd 4: replies out
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	toR.Close()
	fromW.Close()
	b := &browser{cmd: cmd, toCh: toW, pending: map[int]chan cdpReply{}}
	go b.read(fromR)
	t.Cleanup(func() {
		toW.Close() // Chromium exits when its pipe closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("---- chromium stderr ----\n%s", tail(stderr.String(), 30))
		}
	})
	return b
}

// read dispatches replies to their callers; events are not used.
func (b *browser) read(r io.Reader) {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID int `json:"id"`
			cdpReply
		}
		if json.Unmarshal(bytes.TrimSuffix(msg, []byte{0}), &m) != nil || m.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.pending[m.ID]
		delete(b.pending, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.cdpReply
		}
	}
}

// call sends one DevTools command and decodes its result into out.
func (b *browser) call(t *testing.T, session, method string, params, out any) {
	t.Helper()
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpReply, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params, "sessionId": session})
	if err != nil {
		t.Fatal(err)
	}
	if session == "" {
		msg, _ = json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	}
	if _, err := b.toCh.Write(append(msg, 0)); err != nil {
		t.Fatalf("%s: write to chromium: %v", method, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatalf("%s: chromium closed its pipe", method)
		}
		if r.Error != nil {
			t.Fatalf("%s: %s", method, r.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				t.Fatalf("%s: decode %s: %v", method, r.Result, err)
			}
		}
	case <-ctx.Done():
		t.Fatalf("%s: no reply from chromium within 15s", method)
	}
}

// open opens url in a new tab and attaches to it.
func (b *browser) open(t *testing.T, url string) *cdpPage {
	t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call(t, "", "Target.createTarget", map[string]any{"url": url}, &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.call(t, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	return &cdpPage{b: b, session: att.SessionID}
}

// evalString evaluates a JavaScript expression in the page and returns its
// value as a string ("" for anything else or an exception).
func (p *cdpPage) evalString(t *testing.T, expr string) string {
	t.Helper()
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
	}
	p.b.call(t, p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r)
	s, _ := r.Result.Value.(string)
	return s
}

// screenshot captures the whole page as PNG.
func (p *cdpPage) screenshot(t *testing.T) []byte {
	t.Helper()
	var lm struct {
		CSSContentSize struct {
			Width  float64 `json:"width"`
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	p.b.call(t, p.session, "Page.getLayoutMetrics", map[string]any{}, &lm)
	var shot struct {
		Data string `json:"data"`
	}
	p.b.call(t, p.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": lm.CSSContentSize.Width, "height": lm.CSSContentSize.Height, "scale": 1}}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG (%d bytes, %v)", len(png), err)
	}
	return png
}
