// Command compose-validate loads Compose files with the Compose specification's
// own Go loader (github.com/compose-spec/compose-go/v2, pinned in go.mod), the
// loader Docker Compose itself uses: schema validation, interpolation of
// ${VAR:-default} from the environment, port and volume parsing and the
// consistency checks (unknown networks, volumes, services) all run, so a file
// is judged as `docker compose up` would judge it, without a Docker engine.
//
//	compose-validate <compose.yaml>...
//
// One line per file: "OK <file> (<n> services)" or "INVALID <file>: <reason>".
// Exit 1 when any is invalid, 2 on a usage error (no file, unreadable file).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-validate <compose.yaml>...")
		os.Exit(2)
	}
	invalid := false
	for _, file := range os.Args[1:] {
		// Unreadable is a usage error, not a verdict on the file's content.
		if _, err := os.ReadFile(file); err != nil {
			fmt.Fprintf(os.Stderr, "compose-validate: %v\n", err)
			os.Exit(2)
		}
		services, err := validate(file)
		if err != nil {
			invalid = true
			fmt.Printf("INVALID %s: %v\n", file, err)
			continue
		}
		fmt.Printf("OK %s (%d services)\n", file, services)
	}
	if invalid {
		os.Exit(1)
	}
}

func validate(file string) (int, error) {
	// Relative volume sources resolve against the file's folder, as with `docker compose -f`.
	options, err := cli.NewProjectOptions(
		[]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithOsEnv,
		cli.WithConsistency(true),
	)
	if err != nil {
		return 0, err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return 0, err
	}
	return len(project.Services), nil
}
