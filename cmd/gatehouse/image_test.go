package main

import (
	"debug/elf"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImageRootFS checks what scripts/build-image.sh produced (TestMain
// ran it): a static binary, the container's config, the volume, and a
// HEALTHCHECK command that works against the image's own binary.
func TestImageRootFS(t *testing.T) {
	path := func(p string) string { return filepath.Join(imageRoot, filepath.FromSlash(p)) }

	t.Run("binary is static", func(t *testing.T) {
		f, err := elf.Open(binPath)
		if err != nil {
			t.Fatalf("open binary: %v", err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary needs a dynamic loader; the image has none")
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("the binary links %v", libs)
		}
	})

	t.Run("version is stamped", func(t *testing.T) {
		if r := gh(t, nil, "version"); r.code != 0 || strings.TrimSpace(r.stdout) != "gatehouse test-build" {
			t.Errorf("version: %+v", r)
		}
	})

	conf := path("etc/gatehouse/config.yaml")
	t.Run("config listens on every interface and keeps data on the volume", func(t *testing.T) {
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`  listen: ":8080"`, `  dsn: "/data/gatehouse.db"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("config lacks %q", want)
			}
		}
		if r := gh(t, []string{"GATEHOUSE_CONFIG=" + conf}, "check-config"); r.code != 0 {
			t.Errorf("check-config via GATEHOUSE_CONFIG: %+v", r)
		}
	})

	t.Run("directories", func(t *testing.T) {
		tests := []struct {
			name string
			mode os.FileMode
		}{
			{"data", os.ModeDir | 0o700},
			{"tmp", os.ModeDir | os.ModeSticky | 0o777},
		}
		for _, tt := range tests {
			fi, err := os.Stat(path(tt.name))
			if err != nil {
				t.Errorf("/%s: %v", tt.name, err)
				continue
			}
			if fi.Mode() != tt.mode {
				t.Errorf("/%s mode %v, want %v", tt.name, fi.Mode(), tt.mode)
			}
		}
	})

	t.Run("healthcheck against the image's config", func(t *testing.T) {
		dir := t.TempDir()
		env := []string{
			"GATEHOUSE_CONFIG=" + conf,
			"GATEHOUSE_SERVER_LISTEN=127.0.0.1:0",
			"GATEHOUSE_DATABASE_DSN=" + filepath.Join(dir, "gatehouse.db"),
			"GATEHOUSE_LOG_FORMAT=json",
		}
		srv := startServer(t, conf, env...)
		listen := strings.TrimPrefix(srv.URL, "http://")
		check := append(env[:1:1], "GATEHOUSE_SERVER_LISTEN="+listen)
		if r := gh(t, check, "healthcheck"); r.code != 0 {
			t.Errorf("healthcheck: %+v", r)
		}
	})
}

// TestDockerfile keeps the Dockerfile in step with the script and the
// binary: it must build with the script, run the healthcheck command that
// exists, as a non-root user, with /data as the volume.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	if goVersion == nil {
		t.Fatal("no go directive in go.mod")
	}
	tests := []struct {
		name string
		re   string
	}{
		{"builds with the go.mod toolchain", `(?m)^FROM golang:` + regexp.QuoteMeta(goVersion[1]) + `\b`},
		{"builds with the script", `(?m)^RUN .*scripts/build-image\.sh /rootfs$`},
		{"empty base", `(?m)^FROM scratch$`},
		{"data owned by the runtime user", `(?m)^COPY --from=build --chown=65532:65532 /rootfs/data /data$`},
		{"non-root", `(?m)^USER 65532:65532$`},
		{"volume", `(?m)^VOLUME \["/data"\]$`},
		{"config path", `(?m)^ENV GATEHOUSE_CONFIG=/etc/gatehouse/config\.yaml$`},
		{"healthcheck", `CMD \["/usr/local/bin/gatehouse", "healthcheck"\]`},
		{"entrypoint", `(?m)^ENTRYPOINT \["/usr/local/bin/gatehouse"\]$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !regexp.MustCompile(tt.re).MatchString(df) {
				t.Errorf("Dockerfile does not match %s", tt.re)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(imageRoot, "usr", "local", "bin", "gatehouse")); err != nil {
		t.Errorf("the path the Dockerfile runs is not where the script puts the binary: %v", err)
	}
}
