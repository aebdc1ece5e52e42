package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable Quartet reads.
const EnvPrefix = "QUARTET_"

// EnvConfigFile names the config file. main reads it; applyEnv skips it.
const EnvConfigFile = "QUARTET_CONFIG"

var (
	durationType  = reflect.TypeFor[time.Duration]()
	stringsType   = reflect.TypeFor[[]string]()
	stringMapType = reflect.TypeFor[map[string]string]()
)

// envFields maps every environment variable name to the field of cfg it sets.
// Names come from the yaml tags, QUARTET_<SECTION>_<KEY> upper-cased, so a new
// field gets its variable without further code.
func envFields(cfg *Config) map[string]reflect.Value {
	fields := map[string]reflect.Value{}
	collectEnvFields(reflect.ValueOf(cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), fields)
	return fields
}

func collectEnvFields(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		field := v.Field(i)
		if field.Kind() == reflect.Struct {
			collectEnvFields(field, name, out)
			continue
		}
		out[name] = field
	}
}

// EnvNames lists every environment variable that sets a configuration field,
// sorted. The docs test uses it to check that all are documented.
func EnvNames() []string {
	var cfg Config
	names := make([]string, 0, 32)
	for name := range envFields(&cfg) {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// applyEnv sets cfg fields from QUARTET_* entries of env. Unknown QUARTET_*
// names are errors so that a misspelt variable is not silently ignored.
func applyEnv(cfg *Config, env []string) error {
	fields := envFields(cfg)
	var errs []error
	for _, entry := range env {
		name, value, ok := strings.Cut(entry, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfigFile {
			continue
		}
		field, known := fields[name]
		if !known {
			errs = append(errs, fmt.Errorf("%s: unknown environment variable", name))
			continue
		}
		if err := setField(field, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// setField parses s into field according to the field's type.
func setField(field reflect.Value, s string) error {
	switch field.Type() {
	case durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (use a unit, e.g. \"10s\" or \"5m\")", s)
		}
		field.SetInt(int64(d))
		return nil
	case stringsType:
		field.Set(reflect.ValueOf(parseList(s)))
		return nil
	case stringMapType:
		m, err := parseMap(s)
		if err != nil {
			return err
		}
		field.Set(reflect.ValueOf(m))
		return nil
	}
	switch field.Kind() {
	case reflect.String:
		field.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, field.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		field.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		field.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean (use true or false)", s)
		}
		field.SetBool(b)
	default:
		// Only reachable if a field of a new type is added to Config.
		return fmt.Errorf("settings of type %s cannot be set from the environment", field.Type())
	}
	return nil
}

// parseList splits "a,b,c", ignoring blanks so that "a, b," works.
func parseList(s string) []string {
	list := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list
}

// parseMap parses "k1:v1,k2:v2". Values are API secrets, so errors name the
// entry's position but never echo its text.
func parseMap(s string) (map[string]string, error) {
	m := map[string]string{}
	for i, item := range parseList(s) {
		k, v, ok := strings.Cut(item, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("entry %d is not NAME:VALUE", i+1)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("entry %d repeats name %q", i+1, k)
		}
		m[k] = strings.TrimSpace(v)
	}
	return m, nil
}
