package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hashicorp/go-hclog"
)

// watchConfig calls reload on SIGHUP and when the config file changes
// (written in place or replaced by rename, as editors and config managers
// do), debounced, until ctx is done.
func watchConfig(ctx context.Context, path string, logger hclog.Logger, reload func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var events <-chan fsnotify.Event
	if w, err := fsnotify.NewWatcher(); err != nil {
		logger.Warn("cannot watch the config file; reload with SIGHUP", "error", err)
	} else {
		defer w.Close()
		// Watch the folder: a rename-replace removes the file's own watch.
		if err := w.Add(filepath.Dir(path)); err != nil {
			logger.Warn("cannot watch the config folder; reload with SIGHUP", "error", err)
		} else {
			events = w.Events
		}
	}
	abs, _ := filepath.Abs(path)
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			logger.Info("SIGHUP: reloading config", "file", path)
			reload()
		case ev := <-events:
			if p, _ := filepath.Abs(ev.Name); p == abs && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				debounce = time.After(300 * time.Millisecond)
			}
		case <-debounce:
			debounce = nil
			logger.Info("config file changed: reloading", "file", path)
			reload()
		}
	}
}
