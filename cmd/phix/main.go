// Command phix runs the phix encrypted message broker and its clients.
// See the README for the walk-through; `phix help` lists the commands.
package main

import (
	"os"

	"phix.dev/phix/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
