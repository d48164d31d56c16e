package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/aagtm/aagtm/config"
)

// startDaemon builds the logger and loads the config for a long-running
// command (serve, probe), logging every config problem on its own line, and
// logs the effective config once, secrets masked.
func (g *globalFlags) startDaemon(cmd *cobra.Command) (hclog.Logger, *config.Config, error) {
	logger, err := g.newLogger(cmd.ErrOrStderr(), "aagtm")
	if err != nil {
		return nil, nil, err
	}
	cfg, err := g.loadConfig(cmd.Flags())
	if err != nil {
		logConfigErrors(logger, err)
		return nil, nil, errors.New("invalid config: see the problems logged above, or run aagtm check")
	}
	logWarnings(logger, cfg)
	logger.Info("effective config", summarize(cfg)...)
	return logger, cfg, nil
}

// logWarnings logs the config's warnings, one line each.
func logWarnings(logger hclog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		logger.Warn("config warning", "problem", w)
	}
}

// watchReload reloads the config on SIGHUP or a change of the file and
// hands a valid one to apply; an invalid one, or one apply refuses, is
// logged and the old config stays in force.
func (g *globalFlags) watchReload(ctx context.Context, cmd *cobra.Command, logger hclog.Logger, apply func(*config.Config) error) {
	watchConfig(ctx, g.configPath, logger, func() {
		next, err := g.loadConfig(cmd.Flags())
		if err != nil {
			logger.Error("config reload rejected; the old config keeps serving")
			logConfigErrors(logger, err)
			return
		}
		logWarnings(logger, next)
		if err := apply(next); err != nil {
			logger.Error("config reload rejected; the old config keeps serving", "error", err)
			return
		}
		logger.Info("config reloaded", "hash", next.Hash)
	})
}

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
