package plugin

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

const pluginImageName = "drone-sauce-connect/drone-sauce-connect"

// update rewrites the README's settings table and examples, and
// action.yml's inputs: go test ./plugin -update.
var update = flag.Bool("update", false, "rewrite the generated docs")

func knownSettings() map[string]bool {
	known := map[string]bool{}
	for _, s := range settingsTable() {
		known[s.Name] = true
	}
	return known
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	return doc
}

// walk calls f on every map in the document.
func walk(v any, f func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		f(x)
		for _, c := range x {
			walk(c, f)
		}
	case []any:
		for _, c := range x {
			walk(c, f)
		}
	}
}

func checkSettings(t *testing.T, file string, settings any) {
	t.Helper()
	m, ok := settings.(map[string]any)
	if !ok || len(m) == 0 {
		t.Errorf("%s: a plugin step has no settings", file)
		return
	}
	known := knownSettings()
	for k := range m {
		if !known[k] {
			t.Errorf("%s: %q is not a setting the plugin knows", file, k)
		}
	}
}

// TestPipelineExamples checks that the README's pipeline files parse and
// use only settings the plugin knows, with a stop step that always runs.
func TestPipelineExamples(t *testing.T) {
	for _, file := range []string{"drone.yml", "drone-kubernetes.yml"} {
		t.Run(file, func(t *testing.T) { checkDrone(t, file) })
	}
	for _, file := range []string{"harness.yml", "harness-kubernetes.yml"} {
		t.Run(file, func(t *testing.T) { checkHarness(t, file) })
	}
	t.Run("drone-service.yml", func(t *testing.T) {
		doc := readYAML(t, "testdata/pipelines/drone-service.yml")
		services, _ := doc["services"].([]any)
		if len(services) != 1 {
			t.Fatalf("want one service, found %d", len(services))
		}
		svc := services[0].(map[string]any)
		checkSettings(t, "drone-service.yml", svc["settings"])
		if svc["settings"].(map[string]any)["action"] != "run" || svc["name"] == "sauce-connect" {
			t.Errorf("the service must run in action run under a name other than the tunnel's alias: %v", svc)
		}
	})
	t.Run("harness-background.yml", func(t *testing.T) {
		doc := readYAML(t, "testdata/pipelines/harness-background.yml")
		var found bool
		walk(doc, func(m map[string]any) {
			spec, _ := m["spec"].(map[string]any)
			if m["type"] != "Background" || spec == nil {
				return
			}
			found = true
			env, _ := spec["envVariables"].(map[string]any)
			settings := map[string]any{}
			for k, v := range env {
				settings[strings.ToLower(strings.TrimPrefix(k, "PLUGIN_"))] = v
			}
			checkSettings(t, "harness-background.yml", settings)
			if settings["action"] != "run" {
				t.Errorf("the Background step must run in action run: %v", env)
			}
		})
		if !found {
			t.Error("no Background step")
		}
	})
	t.Run("github.yml", func(t *testing.T) {
		doc := readYAML(t, "testdata/pipelines/github.yml")
		var steps int
		walk(doc, func(m map[string]any) {
			if uses, _ := m["uses"].(string); strings.Contains(uses, pluginImageName) {
				steps++
				checkSettings(t, "github.yml", m["with"])
			}
		})
		if steps != 3 {
			t.Errorf("found %d plugin steps, want 3", steps)
		}
	})
}

// pluginSteps calls f on every step of the file that runs the plugin image,
// with its settings, and requires a start and a stop step.
func pluginSteps(t *testing.T, file string, step func(m map[string]any) (map[string]any, bool), want string) {
	t.Helper()
	doc := readYAML(t, "testdata/pipelines/"+file)
	var steps, stops int
	walk(doc, func(m map[string]any) {
		settings, ok := step(m)
		if !ok {
			return
		}
		steps++
		checkSettings(t, file, settings)
		if settings["action"] == "stop" {
			stops++
			if got := fmt.Sprint(m["when"]); got != want {
				t.Errorf("the stop step must always run: when is %s, want %s", got, want)
			}
		}
	})
	if steps != 2 || stops != 1 {
		t.Errorf("want a start and a stop step, found %d plugin steps, %d stop", steps, stops)
	}
}

func checkDrone(t *testing.T, file string) {
	pluginSteps(t, file, func(m map[string]any) (map[string]any, bool) {
		img, _ := m["image"].(string)
		settings, _ := m["settings"].(map[string]any)
		return settings, strings.HasPrefix(img, pluginImageName)
	}, "map[status:[success failure]]")
}

func checkHarness(t *testing.T, file string) {
	pluginSteps(t, file, func(m map[string]any) (map[string]any, bool) {
		spec, _ := m["spec"].(map[string]any)
		if m["type"] != "Plugin" || spec == nil {
			return nil, false
		}
		settings, _ := spec["settings"].(map[string]any)
		return settings, strings.HasPrefix(fmt.Sprint(spec["image"]), pluginImageName)
	}, "map[stageStatus:All]")
}

// actionInputs renders action.yml's inputs from the settings.
func actionInputs() string {
	var b strings.Builder
	b.WriteString("inputs:\n")
	for _, s := range settingsTable() {
		desc := s.Description
		if s.Default != "" {
			desc += " (default: " + s.Default + ")"
		}
		fmt.Fprintf(&b, "  %s:\n    description: %s\n    required: false\n", s.Name, strconv.Quote(desc))
	}
	return b.String()
}

// TestActionInputsAreTheSettings keeps action.yml in step with the settings:
// the inputs and their descriptions (go test ./plugin -update rewrites
// them), and runs.env.
func TestActionInputsAreTheSettings(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	i, j := strings.Index(text, "inputs:\n"), strings.Index(text, "outputs:\n")
	if i < 0 || j < i {
		t.Fatal("action.yml has no inputs: section before outputs:")
	}
	if *update {
		text = text[:i] + actionInputs() + text[j:]
		if err := os.WriteFile(filepath.Join("..", "action.yml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(actionInputs(), text[i:j]); diff != "" {
		t.Errorf("action.yml inputs differ from the settings (go test ./plugin -update):\n%s", diff)
	}
	doc := readYAML(t, "action.yml")
	inputs, _ := doc["inputs"].(map[string]any)
	runs, _ := doc["runs"].(map[string]any)
	env, _ := runs["env"].(map[string]any)
	var names, wantEnv, gotEnv []string
	for _, s := range settingsTable() {
		names = append(names, s.Name)
		wantEnv = append(wantEnv, fmt.Sprintf("%s=${{ inputs.%s }}", s.Env, s.Name))
	}
	var gotInputs []string
	for k := range inputs {
		gotInputs = append(gotInputs, k)
	}
	for k, v := range env {
		gotEnv = append(gotEnv, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(names)
	sort.Strings(gotInputs)
	sort.Strings(wantEnv)
	sort.Strings(gotEnv)
	if diff := cmp.Diff(names, gotInputs); diff != "" {
		t.Errorf("action.yml inputs (-settings +inputs):\n%s", diff)
	}
	if diff := cmp.Diff(wantEnv, gotEnv); diff != "" {
		t.Errorf("action.yml runs.env (-want +got):\n%s", diff)
	}
	if runs["using"] != "docker" || runs["post-if"] != "always()" || !strings.HasPrefix(fmt.Sprint(runs["image"]), "docker://"+pluginImageName) {
		t.Errorf("runs: %v", runs)
	}
}

// settingsMarkdown renders the README's settings table.
// settingGroups are the README's parts of the settings table, in order.
var settingGroups = []struct{ key, title string }{
	{"essentials", "The settings everyone sets first"},
	{"sauce connect", "Sauce Connect options"},
	{"docker", "Docker: image, API, networks, the container"},
	{"kubernetes", "Kubernetes backend"},
	{"tuning", "Lifecycle, tuning and the plugin's own output"},
}

func settingsMarkdown() string {
	var b strings.Builder
	for i, g := range settingGroups {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "#### %s\n\n| Setting | Required | Default | Example | What it does |\n|---|---|---|---|---|\n", g.title)
		for _, s := range settingsTable() {
			if s.Group != g.key {
				continue
			}
			def, req, ex := "—", "no", s.Example
			if s.Default != "" {
				def = "`" + s.Default + "`"
			}
			if s.Required != "" {
				req = "yes (" + s.Required + ")"
			}
			if !strings.HasPrefix(ex, "`") {
				ex = "`" + ex + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", s.Name, req, def, strings.ReplaceAll(ex, "|", "\\|"), s.Description)
		}
	}
	return b.String()
}

// TestEverySettingHasAGroupAndAnExample keeps the table complete.
func TestEverySettingHasAGroupAndAnExample(t *testing.T) {
	groups := map[string]int{}
	for _, g := range settingGroups {
		groups[g.key] = 0
	}
	for _, s := range settingsTable() {
		if _, ok := groups[s.Group]; !ok || s.Example == "" {
			t.Errorf("setting %s: group %q, example %q", s.Name, s.Group, s.Example)
		}
		groups[s.Group]++
	}
	if n := groups["essentials"]; n < 6 || n > 9 {
		t.Errorf("%d settings everyone sets first; keep it about 8", n)
	}
}

// TestReadmeSettingsTable keeps the README's table equal to the code's
// settings; go test ./plugin -update rewrites it.
func TestReadmeSettingsTable(t *testing.T) {
	const begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
	path := filepath.Join("..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q markers", begin, end)
	}
	got, want := readme[i+len(begin):j], settingsMarkdown()
	if *update {
		readme = readme[:i+len(begin)] + want + readme[j:]
		if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		got = want
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("README settings table is out of date (go test ./plugin -update):\n%s", diff)
	}
}

// TestSCOptionsPage keeps docs/sc-options.md's table equal to the code's
// table of SC's options; go test ./plugin -update rewrites it.
func TestSCOptionsPage(t *testing.T) {
	const begin, end = "<!-- sc-options:begin -->\n", "<!-- sc-options:end -->"
	path := filepath.Join("..", "docs", "sc-options.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	i, j := strings.Index(page, begin), strings.Index(page, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the %q … %q markers", path, begin, end)
	}
	got, want := page[i+len(begin):j], scOptionsMarkdown()
	if *update {
		if err := os.WriteFile(path, []byte(page[:i+len(begin)]+want+page[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		got = want
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("docs/sc-options.md is out of date (go test ./plugin -update):\n%s", diff)
	}
}

// scOptionsMarkdown is the table of SC's options for docs/sc-options.md.
func scOptionsMarkdown() string {
	var b strings.Builder
	b.WriteString("| option | short | variable | takes | the plugin |\n|---|---|---|---|---|\n")
	for _, o := range scOptions {
		short, takes := "", "a value"
		if o.Short != "" {
			short = "`-" + o.Short + "`"
		}
		if !o.Value {
			takes = "no value (boolean)"
		}
		var does []string
		switch o.Setting {
		case "":
		case "-":
			does = append(does, "owned: the plugin's own metadata (`runner=<platform>`)")
		default:
			does = append(does, "owned: setting `"+o.Setting+"`")
		}
		switch o.Secret {
		case secretValue:
			does = append(does, "secret: the value (each `user:pass`)")
		case secretURL:
			does = append(does, "secret: the URL's `user:pass`")
		}
		if len(does) == 0 {
			does = append(does, "passed on")
		}
		fmt.Fprintf(&b, "| `--%s` | %s | `%s` | %s | %s |\n", o.Long, short, o.Env(), takes, strings.Join(does, "; "))
	}
	return b.String()
}

// TestReadmeExamplesAreThePipelineFiles keeps the examples of the README
// and of docs/ equal to testdata/pipelines; go test ./plugin -update
// rewrites them.
func TestReadmeExamplesAreThePipelineFiles(t *testing.T) {
	pages, _ := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	pages = append([]string{filepath.Join("..", "README.md")}, pages...)
	found := map[string]string{}
	for _, path := range pages {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		page, changed := string(b), false
		for _, m := range regexp.MustCompile(`<!-- example:(\S+) -->\n`).FindAllStringSubmatch(page, -1) {
			name := m[1]
			if other, twice := found[name]; twice {
				t.Errorf("example %s is in %s and %s: keep one", name, other, path)
			}
			found[name] = path
			begin, end := m[0], "<!-- /example -->"
			i := strings.Index(page, begin)
			j := strings.Index(page[i:], end) + i
			if j < i {
				t.Fatalf("%s: the %s example is not closed", path, name)
			}
			file, err := os.ReadFile(filepath.Join("..", "testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			want := "```yaml\n" + string(file) + "```\n"
			if got := page[i+len(begin) : j]; got != want {
				if !*update {
					t.Errorf("the %s example in %s differs from testdata/%s (go test ./plugin -update)", name, path, name)
				}
				page, changed = page[:i+len(begin)]+want+page[j:], true
			}
		}
		if changed && *update {
			if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"pipelines/drone.yml", "pipelines/drone-service.yml", "pipelines/harness.yml",
		"pipelines/harness-background.yml", "pipelines/github.yml", "pipelines/harness-kubernetes.yml",
		"pipelines/harness-kubernetes-in-pod.yml", "pipelines/drone-kubernetes.yml", "kubernetes/role.yaml",
		"pipelines/gitlab-dind.yml", "pipelines/woodpecker-dind.yml", "pipelines/harness-dind.yml"} {
		if found[name] == "" {
			t.Errorf("no page shows the %s example", name)
		}
	}
}

// TestReadmeShape: the README is a front door — what it is, a quick start
// per platform whose first pipeline is on the first screen, the settings,
// outputs and exit codes, links — and the rest lives in docs/: the
// troubleshooting table answers what users meet, and the internals are in
// docs/how-it-works.md.
func TestReadmeShape(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	readme := read("README.md")
	lines := strings.Split(readme, "\n")
	first := slices.IndexFunc(lines, func(l string) bool { return l == "```yaml" })
	if first < 0 || first >= 60 {
		t.Errorf("the first copy-paste pipeline starts at line %d; keep it within the first 60", first+1)
	}
	if len(lines) > 500 {
		t.Errorf("the README has %d lines; it is the front door: move the details to docs/", len(lines))
	}
	var order []string
	for _, m := range regexp.MustCompile(`<!-- example:(\S+) -->`).FindAllStringSubmatch(readme, -1) {
		order = append(order, m[1])
	}
	quick := []string{"pipelines/drone.yml", "pipelines/harness.yml", "pipelines/harness-kubernetes.yml", "pipelines/github.yml"}
	if !slices.Equal(order, quick) {
		t.Errorf("the README's examples are the quick start's, in this order: %v; it has %v", quick, order)
	}
	var headings []string
	for _, l := range lines {
		if h, ok := strings.CutPrefix(l, "## "); ok {
			headings = append(headings, h)
		}
	}
	if want := []string{"Quick start", "Read on", "Settings", "Step outputs", "Exit codes", "Try it offline, and develop", "License"}; !slices.Equal(headings, want) {
		t.Errorf("the README's sections are %v, want %v", headings, want)
	}
	trouble := read("docs/troubleshooting.md")
	for _, want := range []string{"never becomes ready", "Too many active tunnels", "region", "pages do not load", "tunnelName",
		"`proxy` or `proxy_sauce`", "forks", "PodSecurity", "egress", "docs.saucelabs.com/secure-connections/sauce-connect-5/troubleshooting", "debug: true"} {
		if !strings.Contains(trouble, want) {
			t.Errorf("docs/troubleshooting.md does not cover %q", want)
		}
	}
	for page, want := range map[string]string{"docs/migrating.md": "## From saucelabs/sauce-connect-action v3", "docs/reaching-your-app.md": "# Reaching your app"} {
		if !strings.Contains(read(page), want) {
			t.Errorf("%s lacks %q", page, want)
		}
	}
	hw := read("docs/how-it-works.md")
	for _, want := range []string{"## The tunnel never outlives its pipeline", "## Where later steps find the tunnel", "## The Kubernetes backend", "plugin/docker"} {
		if !strings.Contains(hw, want) {
			t.Errorf("docs/how-it-works.md lacks %q", want)
		}
	}
}

// TestDocsLinks: every relative link of the README and docs/ names a file
// that exists and, with a #fragment, a heading in it.
func TestDocsLinks(t *testing.T) {
	pages, _ := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	pages = append([]string{filepath.Join("..", "README.md")}, pages...)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
			}
			body, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s links to %s, which does not exist", page, target)
				continue
			}
			if frag != "" && !slices.Contains(anchors(string(body)), frag) {
				t.Errorf("%s links to %s: no heading makes #%s", page, target, frag)
			}
		}
	}
}

// anchors are the fragments GitHub makes of a page's headings.
func anchors(page string) []string {
	var out []string
	fence := false
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "```") {
			fence = !fence
		}
		h := strings.TrimLeft(l, "#")
		if fence || h == l || !strings.HasPrefix(h, " ") {
			continue
		}
		a := strings.Map(func(r rune) rune {
			switch {
			case r == ' ' || r == '-':
				return '-'
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_':
				return unicode.ToLower(r)
			}
			return -1
		}, strings.TrimSpace(h))
		out = append(out, a)
	}
	return out
}

// TestPipelineFilesParse: every example pipeline is valid YAML, those of
// runners the suite cannot run (GitLab, Woodpecker) included.
func TestPipelineFilesParse(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "pipelines", "*.yml"))
	if len(files) < 10 {
		t.Fatalf("only %d pipeline files", len(files))
	}
	for _, f := range files {
		if doc := readYAML(t, filepath.Join("testdata", "pipelines", filepath.Base(f))); len(doc) == 0 {
			t.Errorf("%s is empty", f)
		}
	}
}

// TestMarketplaceRules: what GitHub Marketplace asks of an action's
// repository before it lists it: action.yml at the root with a name and a
// description under 125 characters, branding with an icon and one of the
// allowed colours, and no workflow files anywhere in the repository.
func TestMarketplaceRules(t *testing.T) {
	doc := readYAML(t, "action.yml")
	name, _ := doc["name"].(string)
	desc, _ := doc["description"].(string)
	branding, _ := doc["branding"].(map[string]any)
	if name == "" || desc == "" || len(desc) >= 125 {
		t.Errorf("action.yml needs a name and a description under 125 characters: %q (%d)", desc, len(desc))
	}
	colors := []string{"white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark"}
	if icon, _ := branding["icon"].(string); icon == "" || !slices.Contains(colors, fmt.Sprint(branding["color"])) {
		t.Errorf("action.yml branding needs an icon and one of %v: %v", colors, branding)
	}
	for _, dir := range []string{".github/workflows"} {
		if _, err := os.Stat(filepath.Join("..", dir)); err == nil {
			t.Errorf("%s exists: GitHub Marketplace lists no action from a repository with workflow files", dir)
		}
	}
}
