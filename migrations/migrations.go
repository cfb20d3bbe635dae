// Package migrations holds the database schema as embedded SQL files, one
// folder per dialect.
//
// Files are named NNNN_description.up.sql with a matching .down.sql. Both
// dialect folders always hold the same file names; a released file is never
// edited, a change is a new file. Applying them is the store's job.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// FS returns the migration files of dialect ("sqlite" or "postgres") with
// the files at the root of the returned file system.
func FS(dialect string) (fs.FS, error) {
	switch dialect {
	case "sqlite", "postgres":
		sub, err := fs.Sub(files, dialect)
		if err != nil {
			return nil, fmt.Errorf("migrations for %s: %w", dialect, err)
		}
		return sub, nil
	default:
		return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
	}
}
