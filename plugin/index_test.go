package plugin

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// The plugin's entry in Drone's plugin index (drone/drone-plugin-index,
// which Harness's plugin marketplace lists too): docs/plugin-index/content.yaml,
// in that repository's format, its properties rendered from the settings'
// struct tags and its example the README's Drone pipeline (run by the real
// drone exec in the end-to-end tests); go test ./plugin -update rewrites it.

// indexPath is the entry, beside its logo.
var indexPath = filepath.Join("..", "docs", "plugin-index", "content.yaml")

// pluginIndexContent renders the entry.
func pluginIndexContent(t *testing.T) string {
	t.Helper()
	example, err := os.ReadFile(filepath.Join("..", "testdata", "pipelines", "drone.yml"))
	if err != nil {
		t.Fatal(err)
	}
	str := func(v string) *yaml.Node {
		if v == "" {
			return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.SingleQuotedStyle}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Value: v}
	}
	boolean := func(v bool) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: map[bool]string{true: "true", false: "false"}[v]}
	}
	mapping := func(kv ...any) *yaml.Node {
		n := &yaml.Node{Kind: yaml.MappingNode}
		for i := 0; i+1 < len(kv); i += 2 {
			v, ok := kv[i+1].(*yaml.Node)
			if !ok {
				v = str(kv[i+1].(string))
			}
			n.Content = append(n.Content, str(kv[i].(string)), v)
		}
		return n
	}
	literal := func(v string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.LiteralStyle, Value: v}
	}
	props := mapping()
	secret := reflect.TypeFor[Secret]()
	fields := reflect.TypeFor[Settings]()
	for i, s := range settingsTable() {
		typ, def := "string", any(str(s.Default))
		if s.Default == "true" || s.Default == "false" {
			typ, def = "boolean", boolean(s.Default == "true")
		}
		props.Content = append(props.Content, str(s.Name), mapping(
			"type", typ, "defaultValue", def, "description", s.Description,
			"secret", boolean(fields.Field(i).Type == secret), "required", boolean(strings.Contains(s.Required, "start"))))
	}
	doc := mapping(
		"title", "Sauce Connect",
		"author", "drone-sauce-connect",
		"tags", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{str("sauce labs"), str("sauce connect"), str("tunnel"), str("testing"), str("browser testing")}},
		"logo", "sauce-connect.svg",
		"repo", "https://github.com/drone-sauce-connect/drone-sauce-connect",
		"image", "https://hub.docker.com/r/drone-sauce-connect/drone-sauce-connect",
		"license", "Apache License 2.0",
		"readme", "https://github.com/drone-sauce-connect/drone-sauce-connect/blob/main/README.md",
		"description", literal("Opens a Sauce Connect 5 tunnel for the pipeline (through the Docker engine, or as a pod on\nKubernetes), waits until it is ready, hands later steps its address, and removes it when the\npipeline ends, even without a stop step.\n"),
		"example", literal(string(example)),
		"properties", props,
	)
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	return "# Drone's plugin index entry (drone/drone-plugin-index: plugins/sauce-connect/content.yaml).\n# Generated from the settings: go test ./plugin -update.\n" + out.String()
}

func TestPluginIndexEntry(t *testing.T) {
	want := pluginIndexContent(t)
	if *update {
		if err := os.WriteFile(indexPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("%s is out of date (go test ./plugin -update):\n%s", indexPath, diff)
	}
	var entry struct {
		Title, Author, Logo, Repo, Image, License, Readme, Description, Example string
		Tags                                                                    []string
		Properties                                                              map[string]struct {
			Type         string `yaml:"type"`
			DefaultValue any    `yaml:"defaultValue"`
			Description  string `yaml:"description"`
			Secret       *bool  `yaml:"secret"`
			Required     *bool  `yaml:"required"`
		}
	}
	if err := yaml.Unmarshal(got, &entry); err != nil {
		t.Fatalf("the entry is not YAML: %v", err)
	}
	for name, p := range entry.Properties {
		if p.Type == "" || p.Description == "" || p.Secret == nil || p.Required == nil {
			t.Errorf("property %s lacks type, description, secret or required: %+v", name, p)
		}
	}
	if !*entry.Properties["access_key"].Secret || *entry.Properties["username"].Secret || !*entry.Properties["region"].Required {
		t.Errorf("access_key must be secret, username not, region required: %+v", entry.Properties)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(indexPath), entry.Logo)); err != nil {
		t.Errorf("the logo: %v", err)
	}
	var example map[string]any
	if err := yaml.Unmarshal([]byte(entry.Example), &example); err != nil || example["kind"] != "pipeline" {
		t.Errorf("the example is not a Drone pipeline (%v): %v", err, example["kind"])
	}
}
