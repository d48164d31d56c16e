package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/overrides"
	"github.com/aagtm/aagtm/policy"
)

// stateVersion is the state file format version. Version 1 held the
// overrides as drained and forced maps; it is read and migrated.
const stateVersion = 2

// persisted is what a node keeps across restarts: its copy of the override
// set (a cache: the other nodes hold it too) and the engine's last
// verdicts and answers, so a restarted node serves its last decision at
// once instead of failing open.
type persisted struct {
	Version   int                `json:"version"`
	Node      string             `json:"node"`
	SavedAt   time.Time          `json:"saved_at"`
	Overrides []overrides.Record `json:"overrides"`
	Engine    policy.State       `json:"engine"`
	// Corrupt keeps the report of an earlier state file found unusable
	// until an operator acknowledges it, across restarts.
	Corrupt *admin.CorruptState `json:"corrupt,omitempty"`

	// legacy holds the overrides of a version 1 file, to migrate.
	legacy *policy.Overrides
}

// persistedV1 is the part of a version 1 state file that differs.
type persistedV1 struct {
	Overrides policy.Overrides `json:"overrides"`
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

// loadState reads the state file. A missing file is (nil, nil, nil). An
// unreadable or corrupt one is an error, with what could be read of it
// (possibly nothing) for the caller to report as lost.
func loadState(path string) (*persisted, []byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil, nil // no file (ENOTDIR: a parent is a file); saving will say why
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, data, fmt.Errorf("corrupt (%d bytes): %w", len(data), err)
	}
	var st persisted
	switch head.Version {
	case stateVersion:
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, data, fmt.Errorf("corrupt (%d bytes): %w", len(data), err)
		}
	case 1:
		var v1 persistedV1
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, data, fmt.Errorf("corrupt (%d bytes): %w", len(data), err)
		}
		if err := json.Unmarshal(bytes.Replace(data, []byte(`"overrides"`), []byte(`"overrides_v1"`), 1), &st); err != nil {
			return nil, data, fmt.Errorf("corrupt (%d bytes): %w", len(data), err)
		}
		st.legacy = &v1.Overrides
	default:
		return nil, data, fmt.Errorf("version %d, this node reads versions 1 and %d", head.Version, stateVersion)
	}
	return &st, data, nil
}

// moveAside renames an unusable state file to <path>.corrupt-<time> so it
// is kept as evidence and never overwritten.
func moveAside(path string, now time.Time) (string, error) {
	aside := path + ".corrupt-" + now.UTC().Format("20060102T150405.000Z")
	if err := os.Rename(path, aside); err != nil {
		return "", err
	}
	return aside, nil
}

// salvageOverrides reads the drains and forces from the readable start of
// a damaged state file (JSON tokens up to the first error) and describes
// them: what a node that ignores the file loses, unless the other nodes
// still hold it.
func salvageOverrides(data []byte) string {
	type frame struct {
		obj     bool
		key     string // the current key, in an object
		wantKey bool
		fields  map[string]any // a record's fields (objects in "overrides")
	}
	var stack []*frame
	var lost []string
	valueDone := func() {
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].wantKey = true
		}
	}
	// inOverrides: the top of the stack is a frame directly under the
	// top object's "overrides" (keys matched as encoding/json does,
	// ignoring case).
	inOverrides := func(depth int) bool {
		return len(stack) == depth && strings.EqualFold(stack[0].key, "overrides")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].wantKey {
			if key, ok := tok.(string); ok {
				stack[len(stack)-1].key, stack[len(stack)-1].wantKey = key, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			f := &frame{obj: true, wantKey: true}
			if inOverrides(2) && !stack[1].obj { // a record in the version 2 list
				f.fields = map[string]any{}
			}
			stack = append(stack, f)
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			if top := stack[len(stack)-1]; top.fields != nil {
				lost = append(lost, describeSalvaged(top.fields)...)
			}
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			if top := stack[len(stack)-1]; top.fields != nil {
				top.fields[strings.ToLower(top.key)] = tok
			} else if inOverrides(3) && stack[1].obj {
				// version 1: "overrides" → "Drained"|"Forced" → member|db
				switch v := tok.(type) {
				case bool:
					if strings.EqualFold(stack[1].key, "drained") && v {
						lost = append(lost, "drain of "+stack[2].key)
					}
				case string:
					if strings.EqualFold(stack[1].key, "forced") {
						lost = append(lost, "force of "+stack[2].key+" to "+v)
					}
				}
			}
			valueDone()
		}
	}
	if len(lost) == 0 {
		return "no drain or force readable in it; the engine's last verdicts and answers (rebuilt from probes)"
	}
	return strings.Join(lost, ", ") + " (as far as readable; the other nodes restore those they hold); the engine's last verdicts and answers (rebuilt from probes)"
}

// describeSalvaged describes one salvaged override record; nothing for a
// removal or a record cut short.
func describeSalvaged(f map[string]any) []string {
	kind, _ := f["kind"].(string)
	target, _ := f["target"].(string)
	member, _ := f["member"].(string)
	if removed, _ := f["removed"].(bool); removed || target == "" {
		return nil
	}
	r := overrides.Record{Kind: overrides.Kind(kind), Target: target, Member: member}
	if r.Kind != overrides.Drain && r.Kind != overrides.Force {
		return nil
	}
	return []string{r.Describe()}
}
