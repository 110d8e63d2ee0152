// Command xtlschat is a terminal chat client for end-to-end encrypted XMPP sessions: XTLS
// (TLS 1.3 with pinned certificates or a one-time shared password) over Jingle bytestreams.
// Run "xtlschat --help" for the manual.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := environment{getenv: os.Getenv}
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, env); err != nil {
		fmt.Fprintf(os.Stderr, "xtlschat: %s\n", describe(err))
		stop()
		os.Exit(exitCode(err))
	}
}
