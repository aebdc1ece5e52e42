package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestDocsListEverySetting keeps docs/configuration.md in step with Config:
// a new field fails this test until it is documented.
func TestDocsListEverySetting(t *testing.T) {
	data, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	doc := string(data)
	for _, name := range EnvNames() {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/configuration.md does not mention %s", name)
		}
	}
	for _, key := range yamlKeys(reflect.TypeFor[Config](), "") {
		if !strings.Contains(doc, "`"+key+"`") {
			t.Errorf("docs/configuration.md does not mention %s", key)
		}
	}
}

// yamlKeys lists dotted YAML keys of all leaf fields of t.
func yamlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("yaml") == "-" {
			continue
		}
		key := prefix + f.Tag.Get("yaml")
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, yamlKeys(f.Type, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// TestDocsExampleLoads makes sure the production example in the docs is a
// valid configuration.
func TestDocsExampleLoads(t *testing.T) {
	data, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	_, rest, ok := strings.Cut(string(data), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no ```yaml block in docs/configuration.md")
	}
	c, err := Load(writeFile(t, example), nil)
	if err != nil {
		t.Fatalf("docs example: %v", err)
	}
	if c.DevMode() || c.Media.LoopbackOnly || c.Log.Format != "json" {
		t.Errorf("docs example is not a production config: %+v", c)
	}
}
