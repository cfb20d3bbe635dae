package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeKeyTable checks README's "Every key" table against the schema:
// every key is documented once, no row names a key Gatehouse does not
// know, and every default the table shows is the schema's.
func TestReadmeKeyTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n### Every key\n")
	if start < 0 {
		t.Fatal(`README has no "### Every key" section`)
	}
	section := text[start+1:]
	if end := strings.Index(section[1:], "\n#"); end >= 0 {
		section = section[:end+1]
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_.]+)`(?: / `([a-z_]+)`)? \\| ([^|]*) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		keys := []string{m[1]}
		if m[2] != "" {
			// "mail.smtp.username / password": a sibling of the first key.
			keys = append(keys, m[1][:strings.LastIndexByte(m[1], '.')+1]+m[2])
		}
		for _, k := range keys {
			if _, dup := documented[k]; dup {
				t.Errorf("README documents %s twice", k)
			}
			documented[k] = strings.TrimSpace(m[3])
		}
	}
	for _, f := range schema() {
		def, ok := documented[f.key]
		if !ok {
			t.Errorf("README's key table lacks %s", f.key)
			continue
		}
		delete(documented, f.key)
		if want, shown := readmeDefault(f), def; want != "" && shown != want {
			t.Errorf("README gives %s the default %s; the schema's is %s", f.key, shown, want)
		}
	}
	for k := range documented {
		t.Errorf("README documents %s, which is not a config key", k)
	}
}

// readmeDefault renders a schema default the way the table writes it; ""
// means the table's wording is free (lists of objects).
func readmeDefault(f field) string {
	switch f.kind {
	case kindObjects:
		return ""
	case kindStrings:
		return "`[]`"
	case kindMap:
		return "`{}`"
	}
	if f.def == "" {
		return "`\"\"`"
	}
	return "`" + f.def + "`"
}
