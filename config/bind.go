package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// table is a list of settings with the indexes the loader needs. The
// loader reads the package's table of Settings; tests build others.
type table struct {
	list   []Setting
	byPath map[string]Setting
	// prefixes holds every path that leads to a declared setting
	// ("probes", "dns.tcp", "databases.<name>.members[]"): a mapping or
	// list the file may hold.
	prefixes map[string]bool
}

// settings is the table the loader reads: Settings, indexed.
var settings = mustTable(Settings)

// mustTable indexes list; it panics on a declaration the loader cannot
// honour, which every test of this package catches.
func mustTable(list []Setting) *table {
	t, err := newTable(list)
	if err != nil {
		panic(err)
	}
	return t
}

// newTable indexes list and checks each declaration.
func newTable(list []Setting) (*table, error) {
	t := &table{list: list, byPath: map[string]Setting{}, prefixes: map[string]bool{}}
	for _, s := range list {
		if _, dup := t.byPath[s.Path]; dup {
			return nil, fmt.Errorf("config: setting %s is declared twice", s.Path)
		}
		if err := s.check(); err != nil {
			return nil, fmt.Errorf("config: setting %s: %w", s.Path, err)
		}
		t.byPath[s.Path] = s
		for i := range s.Path {
			if s.Path[i] == '.' {
				t.prefixes[strings.TrimSuffix(s.Path[:i], "[]")] = true
				t.prefixes[s.Path[:i]] = true
			}
		}
	}
	return t, nil
}

// check reports a declaration the generic pass cannot honour: a Field on a
// per-entry path, bounds on a type they cannot bound, a default of the
// wrong type.
func (s Setting) check() error {
	perEntry := strings.Contains(s.Path, "[]") || strings.Contains(s.Path, "<name>")
	switch {
	case s.Removed != "" && (s.Field != nil || perEntry):
		return fmt.Errorf("a removed setting has a fixed path and no Field")
	case s.Removed != "":
		return nil
	case s.Field != nil && perEntry:
		return fmt.Errorf("a Field needs a fixed path; bind per-entry settings in build.go with (*problems).setting")
	case s.Field == nil && !perEntry:
		return fmt.Errorf("no Field: say where the value goes, e.g. Field: func(c *Config) any { return &c.Probes.Interval }")
	}
	if s.Field == nil { // per-entry: its type column says what binds it
		types := map[string]reflect.Type{"duration": durationType, "int": reflect.TypeOf(0)}
		return s.checkConstraints(types[s.Type])
	}
	dst := reflect.ValueOf(s.Field(&Config{}))
	if dst.Kind() != reflect.Pointer || dst.IsNil() {
		return fmt.Errorf("Field must return a non-nil pointer, returns %T", s.Field(&Config{}))
	}
	if s.Value != nil {
		var p problems
		p.set(s.Path, s, s.Value, "", dst)
		if len(p) > 0 {
			return fmt.Errorf("default %v does not bind: %w", s.Value, p[0])
		}
	}
	return s.checkConstraints(dst.Elem().Type())
}

// checkConstraints checks that Min and Max suit typ, the field's type.
func (s Setting) checkConstraints(typ reflect.Type) error {
	for _, b := range []any{s.Min, s.Max} {
		if b == nil {
			continue
		}
		if typ == nil {
			return fmt.Errorf("Min and Max bound int and duration settings only")
		}
		if _, err := s.bound(b, typ); err != nil {
			return err
		}
	}
	if s.Zero != "" && s.Min == nil && s.Max == nil {
		return fmt.Errorf("Zero is an exception to Min and Max: declare them")
	}
	return nil
}

// bind is the generic pass: for every setting with a Field, it reads the
// value at its path in the decoded file doc (Value when the file leaves it
// out), parses it by the field's type, checks the declared constraints and
// stores it in cfg. Relative paths (Type "path") resolve against baseDir.
func (t *table) bind(p *problems, cfg *Config, doc map[string]any, baseDir string) {
	for _, s := range t.list {
		if s.Field == nil && s.Removed == "" {
			continue // per-entry: bound in build.go
		}
		var v any
		if vals := valuesAt(doc, s.Path); len(vals) > 0 {
			v = vals[0].value
		}
		var dst reflect.Value
		if s.Field != nil {
			dst = reflect.ValueOf(s.Field(cfg))
		}
		p.set(s.Path, s, v, baseDir, dst)
	}
}

// setting parses v, the value of setting path at field (a per-entry path
// such as databases.cache.ttl), into *dst as the generic pass does: by
// type, with the declared default and constraints. Per-entry settings are
// bound with it in build.go.
func (p *problems) setting(field, path string, v any, dst any) {
	p.set(field, setting(path), v, "", reflect.ValueOf(dst))
}

// set parses v into the field dst points to, applying s's default and
// constraints; problems name field.
func (p *problems) set(field string, s Setting, v any, baseDir string, dst reflect.Value) {
	if s.Removed != "" {
		if !isBlank(v) {
			p.add(field, "removed: %s", s.Removed)
		}
		return
	}
	f := dst.Elem()
	freeText := f.Kind() == reflect.String && len(s.Enum) == 0
	if v == nil || isBlank(v) && !freeText {
		v = s.Value // "" is a value of free text only: a duration or a choice left blank takes the default
	}
	if v == nil {
		return // no value and no default: the code that uses it says what is missing
	}
	if err := parseInto(f, v); err != nil {
		p.add(field, "%s", err)
		if s.Value != nil && !reflect.DeepEqual(v, s.Value) {
			_ = parseInto(f, s.Value) // the default, so later checks see a sane value
		}
		return
	}
	if s.Type == "path" && baseDir != "" && f.Kind() == reflect.String {
		f.SetString(relativeTo(baseDir)(f.String()))
	}
	s.validate(p, field, f)
}

// isBlank reports a value the file did not really give: absent, null or
// blank text.
func isBlank(v any) bool {
	s, isText := v.(string)
	return v == nil || isText && strings.TrimSpace(s) == ""
}

// textParser is a typed field that parses itself from text (Quorum).
type textParser interface {
	parseText(string) error
}

var durationType = reflect.TypeOf(time.Duration(0))

// parseInto parses a decoded value (YAML scalar, list, or override text)
// into f by f's type. Errors say what was expected, with an example.
func parseInto(f reflect.Value, v any) error {
	if tp, ok := f.Addr().Interface().(textParser); ok {
		text, err := scalarText(v)
		if err != nil {
			return err
		}
		return tp.parseText(text)
	}
	if f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String {
		items, err := listText(v)
		if err != nil {
			return err
		}
		out := reflect.MakeSlice(f.Type(), len(items), len(items))
		for i, it := range items {
			out.Index(i).SetString(it)
		}
		f.Set(out)
		return nil
	}
	text, err := scalarText(v)
	if err != nil {
		return err
	}
	trimmed := strings.TrimSpace(text)
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(trimmed)
		if err != nil {
			return fmt.Errorf("%q is not a duration: write it like 500ms, 5s or 2m", text)
		}
		if d < 0 {
			return fmt.Errorf("%s is negative: use a positive duration", text)
		}
		f.SetInt(int64(d))
	case f.CanInt():
		n, err := strconv.ParseInt(trimmed, 10, 64)
		if err != nil || f.OverflowInt(n) {
			return fmt.Errorf("%q is not a whole number", text)
		}
		f.SetInt(n)
	case f.CanUint():
		n, err := strconv.ParseUint(trimmed, 10, 64)
		if err != nil || f.OverflowUint(n) {
			return fmt.Errorf("%q is not a whole number from 0 to %d", text, uint64(1)<<f.Type().Bits()-1)
		}
		f.SetUint(n)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(trimmed)
		if err != nil {
			return fmt.Errorf("%q is not true or false", text)
		}
		f.SetBool(b)
	case f.Kind() == reflect.String:
		f.SetString(text)
	default:
		panic("config: no parser for a field of type " + f.Type().String())
	}
	return nil
}

// scalarText returns a YAML scalar or an override as text.
func scalarText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case []any, []string, map[string]any:
		return "", fmt.Errorf("a single value is expected here, not a list or mapping")
	default:
		return fmt.Sprint(v), nil
	}
}

// listText returns a list setting's entries as text; a single value (an
// override such as AAGTM_PROBES_CHECKS=ping,lag) is split at commas and
// spaces.
func listText(v any) ([]string, error) {
	switch v := v.(type) {
	case []string:
		return append([]string(nil), v...), nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, err := scalarText(e)
			if err != nil {
				return nil, fmt.Errorf("entry %d: %w", i, err)
			}
			out[i] = s
		}
		return out, nil
	case map[string]any:
		return nil, fmt.Errorf("a list is expected here, e.g. [a, b], not a mapping")
	default:
		s, _ := scalarText(v)
		return splitList(s), nil
	}
}

// validate checks the declared constraints on the parsed field f, adding
// a problem naming field (or the list entry) and the fix for each breach.
func (s Setting) validate(p *problems, field string, f reflect.Value) {
	if len(s.Enum) > 0 {
		s.validateEnum(p, field, f)
		return
	}
	if s.NonEmpty && f.Len() == 0 {
		p.add(field, "must not be empty%s", s.advice())
		return
	}
	if !f.CanInt() {
		return
	}
	n := f.Int()
	if s.Positive && n <= 0 {
		p.add(field, "%v: must be positive%s", f.Interface(), s.advice())
		return
	}
	if s.Zero != "" && n == 0 {
		return
	}
	min, max := s.boundOf(s.Min, f.Type()), s.boundOf(s.Max, f.Type())
	if (min == nil || n >= *min) && (max == nil || n <= *max) {
		return
	}
	var want string
	switch {
	case min != nil && max != nil && s.Zero != "":
		want = fmt.Sprintf("use 0 (%s) or %v to %v", s.Zero, s.Min, s.Max)
	case min != nil && max != nil:
		want = fmt.Sprintf("use %v to %v", s.Min, s.Max)
	case min != nil && s.Zero != "":
		want = fmt.Sprintf("use 0 (%s) or at least %v", s.Zero, s.Min)
	case min != nil:
		want = fmt.Sprintf("must be at least %v", s.Min)
	default:
		want = fmt.Sprintf("must be at most %v", s.Max)
	}
	p.add(field, "%v: %s%s", f.Interface(), want, s.advice())
}

// validateEnum checks a text setting, or each entry of a list setting,
// against Enum, storing the value lower case without spaces. A list is a
// set: an entry listed twice is refused.
func (s Setting) validateEnum(p *problems, field string, f reflect.Value) {
	allowed := s.Enum[len(s.Enum)-1]
	if len(s.Enum) > 1 {
		allowed = strings.Join(s.Enum[:len(s.Enum)-1], ", ") + " or " + allowed
	}
	known := func(v reflect.Value) bool {
		word := strings.ToLower(strings.TrimSpace(v.String()))
		if slices.Contains(s.Enum, word) {
			v.SetString(word)
			return true
		}
		return false
	}
	if f.Kind() == reflect.String {
		if !known(f) {
			p.add(field, "%q: use %s%s", f.String(), allowed, s.advice())
		}
		return
	}
	if f.Len() == 0 && s.NonEmpty {
		p.add(field, "empty: list at least one of %s", allowed)
		return
	}
	seen := map[string]bool{}
	for i := 0; i < f.Len(); i++ {
		entry, at := f.Index(i), fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !known(entry):
			p.add(at, "%q: use %s", entry.String(), allowed)
		case seen[entry.String()]:
			p.add(at, "%s is listed twice: remove the duplicate", entry.String())
		}
		seen[entry.String()] = true
	}
}

// advice ends a constraint error: the default, then the hint.
func (s Setting) advice() string {
	var out string
	if s.Value != nil {
		if l, ok := s.Value.([]string); ok {
			out = fmt.Sprintf(" (default [%s])", strings.Join(l, ", "))
		} else if v := fmt.Sprint(s.Value); v != "" {
			out = fmt.Sprintf(" (default %s)", v)
		}
	}
	if s.Hint != "" {
		out += "; " + s.Hint
	}
	return out
}

// bound converts a Min or Max declaration to the field's int64 scale.
func (s Setting) bound(b any, typ reflect.Type) (int64, error) {
	if typ == durationType {
		text, ok := b.(string)
		d, err := time.ParseDuration(text)
		if !ok || err != nil {
			return 0, fmt.Errorf("bound %v of a duration setting must be duration text such as \"50ms\"", b)
		}
		return int64(d), nil
	}
	n, ok := b.(int)
	if !ok || !(typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Int64) {
		return 0, fmt.Errorf("bound %v: only int and duration settings take Min and Max", b)
	}
	return int64(n), nil
}

// boundOf is bound for a checked declaration; nil when b is nil.
func (s Setting) boundOf(b any, typ reflect.Type) *int64 {
	if b == nil {
		return nil
	}
	n, err := s.bound(b, typ)
	if err != nil {
		panic("config: " + s.Path + ": " + err.Error()) // newTable refused it already
	}
	return &n
}

// shapeProblems returns the keys of the decoded file that declare no
// setting ("databases.cache.members[0].regin: unknown setting") and the
// mappings written as something else ("dns: 1"), sorted by key.
func (t *table) shapeProblems(doc map[string]any) []error {
	var out []error
	var walk func(m map[string]any, path, field string)
	walk = func(m map[string]any, path, field string) {
		for _, k := range sortedKeys(m) {
			child := join(path, k)
			if t.prefixes[join(path, "<name>")] {
				child = join(path, "<name>")
			}
			childField, v := join(field, k), m[k]
			_, declared := t.byPath[child]
			switch {
			case v == nil && (declared || t.prefixes[child]):
				// an empty key: its settings take their defaults
			case t.prefixes[child+"[]"]:
				list, ok := v.([]any)
				if !ok {
					out = append(out, fmt.Errorf("%s: a list is expected here, e.g. [{...}, {...}]", childField))
				}
				for i, e := range list {
					entry, ok := e.(map[string]any)
					if !ok {
						out = append(out, fmt.Errorf("%s[%d]: a mapping is expected here, e.g. {name: ...}", childField, i))
						continue
					}
					walk(entry, child+"[]", childField+"["+strconv.Itoa(i)+"]")
				}
			case t.prefixes[child]:
				sub, ok := v.(map[string]any)
				if !ok {
					out = append(out, fmt.Errorf("%s: a mapping of settings is expected here, e.g. %s: {...}; see docs/config.md", childField, k))
					continue
				}
				walk(sub, child, childField)
			case !declared:
				out = append(out, fmt.Errorf("%s: unknown setting; check its spelling against docs/config.md", childField))
			}
		}
	}
	walk(doc, "", "")
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
