package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join("..", "..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := strings.Replace(string(good), "ttl: 5m", `ttl: banana`, 1)
	bad = strings.Replace(bad, `url: "http://127.0.0.1:3000"`, `url: "ftp://nowhere"`, 1)
	bad += "\nbogus_key: 1\n"
	cases := []struct {
		name    string
		args    []string
		env     []string
		code    int
		outputs []string
	}{
		{"shipped config is valid", []string{"check-config", "--config", write("good.yaml", string(good))}, nil, 0, []string{"ok"}},
		{"every bad key named", []string{"check-config", "--config", write("bad.yaml", bad)}, nil, 2, []string{"otp.ttl", "must be a duration", "upstream.url", "bogus_key"}},
		{"env override checked too", []string{"check-config", "--config", write("good2.yaml", string(good))}, []string{"GATEHOUSE_OTP_TTL=1h"}, 2, []string{"otp.ttl"}},
		{"config path from env", []string{"check-config"}, []string{"GATEHOUSE_CONFIG=" + write("bad2.yaml", bad)}, 2, []string{"otp.ttl"}},
		{"missing file", []string{"check-config", "--config", filepath.Join(dir, "nope.yaml")}, nil, 2, []string{"nope.yaml"}},
		{"serve refuses a bad config", []string{"serve", "--config", write("bad3.yaml", bad)}, nil, 2, []string{"otp.ttl", "upstream.url"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, tc.env, &out, &errOut)
			code := 0
			if err != nil {
				code = exitCode(err)
				errOut.WriteString(err.Error())
			}
			if code != tc.code {
				t.Fatalf("exit code %d, want %d (err %v)", code, tc.code, err)
			}
			all := out.String() + errOut.String()
			for _, want := range tc.outputs {
				if !strings.Contains(all, want) {
					t.Errorf("output lacks %q:\n%s", want, all)
				}
			}
		})
	}
}
