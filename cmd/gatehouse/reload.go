package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"gatehouse/config"
)

// reloader re-reads the config file.
type reloader struct {
	path string // the config file; its directory is watched
	load func() (*config.Config, error)
}

// reloadDebounce lets an editor finish writing (truncate, write, rename)
// before the file is read.
const reloadDebounce = 300 * time.Millisecond

// reloadWatcher applies a new config on SIGHUP or when the file changes.
// A file that fails validation is rejected with every problem logged, and
// the running config stays in force.
type reloadWatcher struct {
	rl      *reloader
	cur     *config.Config
	apply   func(*config.Config) error
	log     *slog.Logger
	reloads *prometheus.CounterVec

	seen [sha256.Size]byte // hash of the file content last acted on
	// sections are the top-level keys of the document in force; a reload
	// must not drop the ones in guardedSections.
	sections map[string]bool
}

// guardedSections are the top-level sections a reload may not drop: a
// file without them would put the defaults in force — open sign-up, no
// deny rules, codes printed to the console. An editor or a tool that has
// written only part of the file yet produces exactly that.
var guardedSections = []string{"access", "mail"}

// settleTime is how long the file's size and modification time must stay
// the same before it is read as a whole.
const settleTime = 100 * time.Millisecond

// topLevelKeys lists the keys of a YAML document's top-level mapping.
func topLevelKeys(data []byte) (map[string]bool, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	keys := make(map[string]bool, len(doc))
	for k := range doc {
		keys[k] = true
	}
	return keys, nil
}

func (w *reloadWatcher) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if data, err := os.ReadFile(w.rl.path); err == nil {
		w.seen = sha256.Sum256(data)
		w.sections, _ = topLevelKeys(data)
	}

	events, errs, stop := w.watch()
	defer stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			w.reload("SIGHUP", true)
		case ev := <-events:
			if w.concerns(ev) {
				debounce.Reset(reloadDebounce)
			}
		case err := <-errs:
			w.log.Warn("config file watch", "err", err)
		case <-debounce.C:
			if !w.reload("file changed", false) {
				// Still being written: look again once it settles.
				debounce.Reset(reloadDebounce)
			}
		}
	}
}

// watch watches the config file's directory, not the file: editors and
// orchestrators replace the file by renaming another over it, which ends
// a watch on the file itself. Without a watcher only SIGHUP reloads.
func (w *reloadWatcher) watch() (<-chan fsnotify.Event, <-chan error, func()) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		w.log.Warn("cannot watch the config file; reload with SIGHUP", "err", err)
		return nil, nil, func() {}
	}
	dir := filepath.Dir(w.rl.path)
	if err := fw.Add(dir); err != nil {
		_ = fw.Close()
		w.log.Warn("cannot watch the config file; reload with SIGHUP", "dir", dir, "err", err)
		return nil, nil, func() {}
	}
	return fw.Events, fw.Errors, func() { _ = fw.Close() }
}

// concerns reports whether a directory event may have changed the config:
// the file itself, or the "..data" links through which Kubernetes swaps a
// mounted ConfigMap.
func (w *reloadWatcher) concerns(ev fsnotify.Event) bool {
	name := filepath.Base(ev.Name)
	return name == filepath.Base(w.rl.path) || strings.HasPrefix(name, "..")
}

// reload re-reads and applies the config. A file-change reload is skipped
// when the content is what was last acted on (a touch, a chmod, an editor's
// backup write); SIGHUP always reloads, since the environment may differ.
// It reports false when the file was still changing, so the caller tries
// again later.
//
// A document that holds no settings at all, or lacks a guarded section
// the running one has, is refused: it is what a file truncated or half
// written looks like, and loading it would put defaults in force.
func (w *reloadWatcher) reload(reason string, force bool) bool {
	before, statErr := os.Stat(w.rl.path)
	data, err := os.ReadFile(w.rl.path)
	if err == nil && statErr == nil {
		time.Sleep(settleTime)
		after, err := os.Stat(w.rl.path)
		if err == nil && (after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) || after.Size() != int64(len(data))) {
			return false
		}
	}
	var keys map[string]bool
	if err == nil {
		sum := sha256.Sum256(data)
		if !force && bytes.Equal(sum[:], w.seen[:]) {
			return true
		}
		w.seen = sum
		keys, _ = topLevelKeys(data)
		if refusal := w.incomplete(keys); refusal != "" {
			w.reloads.WithLabelValues("rejected").Inc()
			w.log.Error("config reload rejected; keeping the running config", "reason", reason,
				"file", w.rl.path, "err", refusal)
			return true
		}
	}
	next, err := w.rl.load()
	if err == nil {
		err = w.apply(next)
	}
	if err != nil {
		w.reloads.WithLabelValues("rejected").Inc()
		w.log.Error("config reload rejected; keeping the running config", "reason", reason,
			"file", w.rl.path, "err", oneLine(err))
		return true
	}
	w.reloads.WithLabelValues("applied").Inc()
	if keys := config.RestartRequired(w.cur, next); len(keys) > 0 {
		w.log.Warn("config reloaded; these changes need a restart to apply", "reason", reason, "keys", strings.Join(keys, ","))
	} else {
		w.log.Info("config reloaded", "reason", reason)
	}
	w.cur = next
	if keys != nil {
		w.sections = keys
	}
	return true
}

// incomplete explains why a parsed document cannot be the whole file, or
// returns "". keys is nil when the document does not parse (the loader
// then names the problem).
func (w *reloadWatcher) incomplete(keys map[string]bool) string {
	if keys == nil {
		return ""
	}
	if len(keys) == 0 {
		return "the file holds no settings (empty, or still being written); write the new file next to it and rename it over the old one"
	}
	var missing []string
	for _, k := range guardedSections {
		if w.sections[k] && !keys[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return "the file lacks the " + strings.Join(missing, ", ") + " section the running config has (a partly written file?); to go back to the defaults, keep the section as \"" + missing[0] + ": {}\" or restart"
	}
	return ""
}

// oneLine joins a multi-line error (config problems come one per line) for
// a single log line.
func oneLine(err error) string {
	msg := strings.ReplaceAll(err.Error(), ":\n", ": ")
	return strings.ReplaceAll(msg, "\n", "; ")
}
