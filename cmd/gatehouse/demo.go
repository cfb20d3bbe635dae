package main

import (
	"context"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gatehouse/config"
)

func (e *env) demoCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run Gatehouse on SQLite with a built-in demo app; codes are printed to the console",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.demo(cmd.Context(), listen)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (default: server.listen, 127.0.0.1:8080)")
	return cmd
}

// demo serves a built-in upstream that shows the identity headers it
// receives, behind a Gatehouse with the defaults: SQLite under data/, codes
// printed to the console, /public/** open to everyone.
func (e *env) demo(ctx context.Context, listen string) error {
	cfg, err := config.Default(e.environ)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("invalid configuration:\n%w", err)}
	}
	if listen != "" {
		cfg.Server.Listen = listen
		if lookupEnv(e.environ, "GATEHOUSE_SERVER_PUBLIC_URL") == "" {
			pub, err := cfg.Server.PublicURL.Parse("http://" + strings.Replace(listen, "127.0.0.1", "localhost", 1))
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--listen: %w", err)}
			}
			cfg.Server.PublicURL = pub
		}
	}
	if len(cfg.Access.Rules) == 0 {
		cfg.Access.Rules = []config.Rule{{Paths: []string{"/public/**"}, Policy: "public"}}
	}
	if cfg.Mail.Driver != "log" {
		return &exitError{code: 2, err: fmt.Errorf("demo prints codes to the console: unset GATEHOUSE_MAIL_DRIVER")}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo upstream: %w", err)
	}
	up := &http.Server{Handler: demoApp(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = up.Serve(ln) }()
	defer up.Close()
	upURL := "http://" + ln.Addr().String()
	if cfg.Upstream.URL, err = cfg.Upstream.URL.Parse(upURL); err != nil {
		return err
	}
	return e.runGateway(ctx, cfg, nil, func(addr string) {
		fmt.Fprintf(e.stderr, "\n  Gatehouse demo is running.\n"+
			"  Open %s/ in a browser: you will be asked to sign in.\n"+
			"  Sign-in codes are printed here, in this console (mail driver 'log').\n"+
			"  %s/public/ is open to everyone; %s/.gatehouse/account shows your sessions.\n\n",
			cfg.Server.PublicURL, cfg.Server.PublicURL, cfg.Server.PublicURL)
	})
}

var demoPage = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · demo app</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1f2937}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #e5e7eb;padding:.4rem;text-align:left;font-family:ui-monospace,monospace;font-size:.9rem}
.who{background:#eef2ff;border-radius:.5rem;padding:1rem}button{font:inherit;padding:.5rem 1rem}</style></head>
<body><h1>{{.Title}}</h1>
{{if .Email}}<p class="who">Signed in as <strong>{{.Email}}</strong> — this app has no login code of its own; Gatehouse told it who you are.</p>
<form method="get" action="/.gatehouse/account"><button>Your account and sessions</button></form>
{{else}}<p class="who">This page is public: no identity headers were sent.</p>{{end}}
<p><a href="/">Dashboard (protected)</a> · <a href="/public/">Public page</a></p>
<h2>Headers this app received</h2>
<table>{{range .Headers}}<tr><th>{{.Name}}</th><td>{{.Value}}</td></tr>{{end}}</table>
</body></html>`))

// demoApp is the built-in upstream: a dashboard that prints what Gatehouse
// sent it.
func demoApp() http.Handler {
	type header struct{ Name, Value string }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hs []header
		for k, v := range r.Header {
			if k == "Cookie" {
				continue
			}
			hs = append(hs, header{k, strings.Join(v, ", ")})
		}
		sort.Slice(hs, func(i, j int) bool { return hs[i].Name < hs[j].Name })
		title := "Dashboard"
		if strings.HasPrefix(r.URL.Path, "/public") {
			title = "Public page"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = demoPage.Execute(w, map[string]any{"Title": title, "Email": r.Header.Get("X-Auth-Request-Email"), "Headers": hs})
	})
}
