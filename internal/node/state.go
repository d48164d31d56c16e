package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aagtm/aagtm/policy"
)

// stateVersion is the state file format version.
const stateVersion = 1

// persisted is what a node keeps across restarts: the operator overrides
// and the engine's last verdicts and answers, so a restarted node serves its
// last decision at once instead of failing open.
type persisted struct {
	Version   int              `json:"version"`
	Node      string           `json:"node"`
	SavedAt   time.Time        `json:"saved_at"`
	Overrides policy.Overrides `json:"overrides"`
	Engine    policy.State     `json:"engine"`
}

// saveState writes the state atomically: a temp file in the same folder,
// fsync, rename over the old file, fsync of the folder. A crash leaves
// either the old file or the new one, never half of one.
func saveState(path string, st *persisted) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create state folder: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace state file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// loadState reads the state file. A missing file is (nil, nil); a corrupt
// one is an error the caller reports and ignores.
func loadState(path string) (*persisted, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	var st persisted
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt (%v): ignoring it", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state file %s has version %d, want %d: ignoring it", path, st.Version, stateVersion)
	}
	return &st, nil
}
